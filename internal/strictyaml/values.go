package strictyaml

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as a string ("90s", "2h").
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

const durationFix = "write durations like 30s, 5m or 2h"

// UnmarshalYAML reads a non-negative duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return ValueError(n, durationFix, "want a duration such as 30s, 5m or 2h")
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return ValueError(n, durationFix, "%s is not a duration", Quote(n.Value))
	}
	if v < 0 {
		return ValueError(n, durationFix+", not negative", "duration %s is negative", Quote(n.Value))
	}
	*d = Duration(v)
	return nil
}

// UnmarshalJSON reads a non-negative duration string (control APIs).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("%s is not a duration such as 30s or 2h", Quote(s))
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// IsGUID reports whether s is a GUID in its 8-4-4-4-12 hex form, as Power
// BI and Entra ID write ids.
func IsGUID(s string) bool { return guidRE.MatchString(s) }
