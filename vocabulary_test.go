package pbirefresh

import (
	"errors"
	"fmt"
	"testing"
)

func TestHintFindsTheFirstNonEmptyHint(t *testing.T) {
	base := errors.New("boom")
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"plain", base, ""},
		{"direct", WithHint(base, "do x"), "do x"},
		{"wrapped", fmt.Errorf("ctx: %w", WithHint(base, "do x")), "do x"},
		{"empty outer, inner set", WithHint(WithHint(base, "inner"), ""), "inner"},
		{"joined", errors.Join(base, WithHint(base, "second")), "second"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Hint(c.err); got != c.want {
				t.Fatalf("Hint = %q, want %q", got, c.want)
			}
		})
	}
	if !errors.Is(WithHint(base, "x"), base) {
		t.Fatal("WithHint hides the wrapped error from errors.Is")
	}
	if WithHint(nil, "x") != nil {
		t.Fatal("WithHint(nil) is not nil")
	}
}

func TestStatusClasses(t *testing.T) {
	for _, s := range Statuses() {
		n := 0
		for _, b := range []bool{s.InFlight(), s.Decided(), s.Result()} {
			if b {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s is in %d of in flight / decided / result", s, n)
		}
		if s.Failure() != (s.Result() && s != Completed) {
			t.Errorf("%s: Failure() wrong", s)
		}
	}
}

func TestOneOf(t *testing.T) {
	if got := OneOf(BusyPolicies()); got != "wait, skip or fail" {
		t.Fatal(got)
	}
	if got := OneOf(Overlaps()); got != "skip or queue" {
		t.Fatal(got)
	}
	if !Valid(OverlapQueue, Overlaps()) || Valid(Overlap("Queue"), Overlaps()) {
		t.Fatal("Valid")
	}
}
