// Package strictyaml decodes the project's YAML files (the configuration
// and the emulator's scenarios) one way: strictly (unknown keys, duplicate
// keys, a second document and an empty file are errors), with every
// problem at once, each at its line and column with a fix.
//
// Problems are data (Problem, Problems sorted by Pos, as go/scanner's
// ErrorList), formatted only when printed. File builds the node tree for
// positions only when a problem needs it, so a large valid file is parsed
// once. Duration, IsGUID and Quote are the value helpers both formats
// share. It knows nothing of what the files mean.
package strictyaml
