package windowszones

import (
	"sort"
	"strings"
)

//go:generate go run gen.go

// zone is one Windows id and its IANA name.
type zone struct {
	windows, iana string
}

// IANA returns the IANA name of a Windows time zone id: the zone CLDR gives
// for territory "001". The id matches exactly or, failing that, without
// regard to case (Windows itself looks ids up case-insensitively).
func IANA(windowsID string) (string, bool) {
	i := sort.Search(len(defaults), func(i int) bool { return defaults[i].windows >= windowsID })
	if i < len(defaults) && defaults[i].windows == windowsID {
		return defaults[i].iana, true
	}
	for _, z := range defaults {
		if strings.EqualFold(z.windows, windowsID) {
			return z.iana, true
		}
	}
	return "", false
}

// Canonical returns a Windows time zone id in the table's spelling, for an
// id that IANA accepts ("utc" → "UTC").
func Canonical(windowsID string) (string, bool) {
	i := sort.Search(len(defaults), func(i int) bool { return defaults[i].windows >= windowsID })
	if i < len(defaults) && defaults[i].windows == windowsID {
		return windowsID, true
	}
	for _, z := range defaults {
		if strings.EqualFold(z.windows, windowsID) {
			return z.windows, true
		}
	}
	return "", false
}

// Windows returns the Windows time zone id for an IANA name: the id whose
// territory "001" zone it is ("Europe/Berlin" → "W. Europe Standard
// Time"), else the id that lists it for another territory ("Europe/Paris"
// → "Romance Standard Time"). IANA names match exactly, in CLDR's
// spelling.
func Windows(iana string) (string, bool) {
	for _, z := range defaults {
		if z.iana == iana {
			return z.windows, true
		}
	}
	i := sort.Search(len(territories), func(i int) bool { return territories[i].iana >= iana })
	if i < len(territories) && territories[i].iana == iana {
		return territories[i].windows, true
	}
	return "", false
}

// IDs returns every Windows time zone id the table knows, sorted.
func IDs() []string {
	out := make([]string, len(defaults))
	for i, z := range defaults {
		out[i] = z.windows
	}
	return out
}
