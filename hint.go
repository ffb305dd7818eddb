package pbirefresh

// Hinter is an error that names the operator's next step.
type Hinter interface {
	error
	Hint() string
}

// Hint returns the first non-empty hint in err's tree (wrapped and joined
// errors included), or "".
func Hint(err error) string {
	for err != nil {
		if h, ok := err.(Hinter); ok && h.Hint() != "" {
			return h.Hint()
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if h := Hint(e); h != "" {
					return h
				}
			}
			return ""
		default:
			return ""
		}
	}
	return ""
}

// WithHint returns err carrying hint. errors.Is and errors.As see err.
func WithHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &hinted{err: err, hint: hint}
}

type hinted struct {
	err  error
	hint string
}

func (e *hinted) Error() string { return e.err.Error() }
func (e *hinted) Unwrap() error { return e.err }
func (e *hinted) Hint() string  { return e.hint }
