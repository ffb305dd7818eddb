package strictyaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Pos is a place in a file: 1-based line and column; 0 means unknown.
type Pos struct{ Line, Col int }

// String writes "line:col", "line" when the column is unknown, or "".
func (p Pos) String() string {
	switch {
	case p.Line == 0:
		return ""
	case p.Col == 0:
		return strconv.Itoa(p.Line)
	}
	return strconv.Itoa(p.Line) + ":" + strconv.Itoa(p.Col)
}

// Problem is one thing wrong in a file, with the fix.
type Problem struct {
	File string
	Pos  Pos
	// Who names the object the problem belongs to (`job "sales"`), if any.
	Who string
	Msg string
	Fix string
}

// Error writes "file:line:col: who: msg; fix" (without the file part
// for a problem that belongs to no file).
func (p *Problem) Error() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if s := p.Pos.String(); s != "" {
			b.WriteString(":" + s)
		}
		b.WriteString(": ")
	}
	if p.Who != "" {
		b.WriteString(p.Who + ": ")
	}
	b.WriteString(p.Msg)
	if p.Fix != "" {
		b.WriteString("; " + p.Fix)
	}
	return b.String()
}

// Hint returns the fix.
func (p *Problem) Hint() string { return p.Fix }

// MaxProblems bounds a report: beyond it, one line says how many more
// there were (a fuzzed or generated file can hold millions).
const MaxProblems = 100

// Problems is every problem found in a file. Err sorts them by position,
// as go/scanner.ErrorList does.
type Problems []*Problem

// Err returns nil for no problems, or the problems sorted by position.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i].Pos, ps[j].Pos
		return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
	})
	if len(ps) > MaxProblems {
		more := &Problem{File: ps[0].File, Msg: fmt.Sprintf("and %d more problems", len(ps)-MaxProblems), Fix: "fix the ones above first"}
		ps = append(ps[:MaxProblems:MaxProblems], more)
	}
	return ps
}

// Error writes one problem a line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each *Problem.
func (ps Problems) Unwrap() []error {
	out := make([]error, len(ps))
	for i, p := range ps {
		out[i] = p
	}
	return out
}

// File is one YAML file being decoded. Its node tree, for positions, is
// built only when a problem needs one: a large valid file costs one parse.
type File struct {
	// Name labels every problem (the path given by the user).
	Name string
	Data []byte
	// Example names the file that documents every key, for fixes.
	Example string

	root *yaml.Node
	pos  map[string]Pos
}

// Decode reads the file's one YAML document into v strictly: unknown and
// duplicate keys, type mismatches and values refused by UnmarshalYAML are
// problems with their line and column, all reported at once. An empty
// file, a comment-only one, "---" alone and a second document are
// problems too.
func (f *File) Decode(v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(f.Data))
	dec.KnownFields(true)
	err := dec.Decode(v)
	switch {
	case errors.Is(err, io.EOF):
		return f.empty()
	case err != nil:
		return f.decodeError(err).Err()
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.Elem().IsZero() {
		return f.empty()
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return Problems{{File: f.Name, Pos: Pos{Line: next.Line},
			Msg: "a second YAML document starts here and would be ignored",
			Fix: "keep one document per file: remove this --- line and what follows, or merge it into the first document"}}.Err()
	} else if !errors.Is(err, io.EOF) {
		return f.decodeError(err).Err()
	}
	return nil
}

func (f *File) empty() error {
	fix := "write the configuration in it"
	if f.Example != "" {
		fix += " (" + f.Example + " shows every key)"
	}
	return Problems{{File: f.Name, Msg: "the file has no YAML content (empty, comments only, or --- alone)", Fix: fix}}.Err()
}

// Problem records a problem at the value of a key path such as
// "jobs[0].refresh.type", or at its nearest present parent.
func (f *File) Problem(path, who, fix, format string, a ...any) *Problem {
	return &Problem{File: f.Name, Pos: f.Pos(path), Who: who, Msg: fmt.Sprintf(format, a...), Fix: fix}
}

// Pos returns the position of a key path's value, or of its nearest
// present parent ({1, 1} if none).
func (f *File) Pos(path string) Pos {
	if f.pos == nil {
		f.pos = map[string]Pos{}
		f.record(f.tree(), "")
	}
	for path != "" {
		if p, ok := f.pos[path]; ok {
			return p
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return Pos{1, 1}
}

func (f *File) tree() *yaml.Node {
	if f.root == nil {
		f.root = &yaml.Node{}
		yaml.Unmarshal(f.Data, f.root)
	}
	return f.root
}

func (f *File) record(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			f.record(c, path)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			kp := k.Value
			if path != "" {
				kp = path + "." + k.Value
			}
			f.pos[kp] = Pos{v.Line, v.Column}
			f.record(v, kp)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			ip := path + "[" + strconv.Itoa(i) + "]"
			f.pos[ip] = Pos{c.Line, c.Column}
			f.record(c, ip)
		}
	}
}

// ValueError is what an UnmarshalYAML method returns for a value it
// refuses: the decoder goes on, and Decode reports it at the value's line
// and column with the fix.
func ValueError(n *yaml.Node, fix, format string, a ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d:%d: %s%s%s", n.Line, n.Column, fmt.Sprintf(format, a...), fixSep, fix)}}
}

// fixSep separates a ValueError's message from its fix inside yaml.v3's
// error strings.
const fixSep = "\x1f"

var (
	lineRE         = regexp.MustCompile(`^(?:yaml: )?line (\d+)(?::(\d+))?: (.*)$`)
	unknownFieldRE = regexp.MustCompile(`^field (\S+) not found in type`)
	duplicateRE    = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
)

const syntaxFix = "fix the YAML syntax (indent with spaces, close quotes and brackets)"

// decodeError turns yaml.v3's messages ("line 3: field shedule not found
// in type configs.Job", "yaml: line 2: did not find expected key") into
// problems at their line and, where it can be found, column.
func (f *File) decodeError(err error) Problems {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var ps Problems
	for _, m := range msgs {
		msg, fix, _ := strings.Cut(m, fixSep)
		// One problem per line: yaml.v3 quotes values, newlines and all.
		msg = strings.Join(strings.Fields(msg), " ")
		p := &Problem{File: f.Name, Fix: fix}
		sm := lineRE.FindStringSubmatch(msg)
		if sm == nil {
			p.Msg = strings.TrimPrefix(msg, "yaml: ")
			if p.Fix == "" {
				p.Fix = "fix the YAML"
			}
			if te == nil { // a syntax error on the first line, or one yaml.v3 gives no line for
				p.Pos.Line = f.syntaxLine(p.Msg, 0)
				p.Fix = syntaxFix
			}
			ps = append(ps, p)
			continue
		}
		p.Pos.Line, _ = strconv.Atoi(sm[1])
		p.Pos.Col, _ = strconv.Atoi(sm[2])
		p.Msg = sm[3]
		switch {
		case fix != "":
		case te == nil:
			// A syntax error. yaml.v3 reports the line where the enclosing
			// block began; find the line where the text stops parsing.
			p.Pos = Pos{Line: f.syntaxLine(p.Msg, p.Pos.Line)}
			p.Fix = syntaxFix
		case unknownFieldRE.MatchString(p.Msg):
			key := unknownFieldRE.FindStringSubmatch(p.Msg)[1]
			p.Msg = fmt.Sprintf("unknown key %q", key)
			p.Fix = "remove it or correct its spelling"
			if f.Example != "" {
				p.Fix += " (" + f.Example + " lists every key)"
			}
			p.Pos.Col = keyColumn(f.tree(), p.Pos.Line, key)
		case duplicateRE.MatchString(p.Msg):
			d := duplicateRE.FindStringSubmatch(p.Msg)
			p.Msg = fmt.Sprintf("key %q is written twice (first at line %s)", d[1], d[2])
			p.Fix = "keep one of them"
			p.Pos.Col = keyColumn(f.tree(), p.Pos.Line, d[1])
		default:
			p.Fix = "check the value's type"
			if f.Example != "" {
				p.Fix += " against " + f.Example
			}
		}
		ps = append(ps, p)
	}
	return ps
}

// syntaxLine finds the first line at which the file fails to parse with
// the same message, by bisecting on prefixes of whole lines: a streaming
// parser fails at the same place in every longer prefix.
func (f *File) syntaxLine(msg string, reported int) int {
	lines := bytes.SplitAfter(f.Data, []byte("\n"))
	fails := func(k int) bool {
		var n yaml.Node
		err := yaml.Unmarshal(bytes.Join(lines[:k], nil), &n)
		if err == nil {
			return false
		}
		text := strings.Join(strings.Fields(err.Error()), " ")
		if sm := lineRE.FindStringSubmatch(text); sm != nil {
			return sm[3] == msg
		}
		return strings.TrimPrefix(text, "yaml: ") == msg
	}
	if !fails(len(lines)) {
		return reported
	}
	lo, hi := 1, len(lines)
	for lo < hi {
		mid := (lo + hi) / 2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// keyColumn finds the column of a mapping key on a line (0 if not found).
func keyColumn(n *yaml.Node, line int, key string) int {
	if n == nil {
		return 0
	}
	if n.Kind == yaml.MappingNode {
		for i := 0; i < len(n.Content); i += 2 {
			if k := n.Content[i]; k.Value == key && k.Line == line {
				return k.Column
			}
		}
	}
	for _, c := range n.Content {
		if col := keyColumn(c, line, key); col != 0 {
			return col
		}
	}
	return 0
}

// Quote writes a value for a message: quoted, and cut to a readable
// length (a 50 MiB value must not be echoed whole).
func Quote(s string) string {
	const limit = 64
	if len(s) <= limit {
		return strconv.Quote(s)
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("... (%d bytes)", len(s))
}
