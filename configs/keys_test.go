package configs

import (
	"reflect"
	"strings"
)

// yamlKeys lists every yaml key of a struct type, recursively.
func yamlKeys(v any) []string {
	var out []string
	var walk func(t reflect.Type)
	seen := map[reflect.Type]bool{}
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("yaml")
			name, opts, _ := strings.Cut(tag, ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name != "" {
				out = append(out, name)
			}
			_ = opts
			walk(f.Type)
		}
	}
	walk(reflect.TypeOf(v))
	return out
}
