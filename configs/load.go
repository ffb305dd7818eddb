package configs

import (
	"fmt"
	"io"
	"os"

	"github.com/pbirefresh/pbirefresh/internal/strictyaml"
)

// MaxSize bounds a configuration file: 10,000 jobs take about 2 MB, and a
// mistaken --config /dev/zero must fail, not exhaust memory.
const MaxSize = 10 << 20

// Load reads, defaults and validates a configuration file. A path that is
// not a regular file (a FIFO, a device, a directory) or is larger than
// MaxSize is refused before it is read.
func Load(path string) (*Config, error) { return LoadWith(path, Options{}) }

// LoadWith is Load with options.
func LoadWith(path string, o Options) (*Config, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, problem("read config: %v", "check the path given to --config", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, problem("config %s is not a regular file (%s)", "point --config at a YAML file", path, fileKind(fi.Mode()))
	}
	if fi.Size() > MaxSize {
		return nil, problem("config %s is %d bytes, above the %d MiB limit", "point --config at the configuration file; a real one is far smaller", path, fi.Size(), MaxSize>>20)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, problem("read config: %v", "check the path given to --config and that the file is readable by this user", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, problem("read config: %v", "check the path given to --config", err)
	}
	if len(b) > MaxSize {
		return nil, problem("config %s grew above the %d MiB limit while being read", "point --config at the configuration file", path, MaxSize>>20)
	}
	return ParseWith(path, b, o)
}

func problem(format, fix string, a ...any) error {
	return strictyaml.Problems{{Msg: fmt.Sprintf(format, a...), Fix: fix}}.Err()
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeDevice != 0:
		return "a device"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "not a regular file"
}

// Options relax what Parse requires.
type Options struct {
	// AllowNoJobs accepts a configuration without jobs: the input of
	// `pbirefresh import`, which adds them. Everything else must run.
	AllowNoJobs bool
	// NoHTTP: the command serves no HTTP (once, next, history, state
	// copy), so http.token_file is not read: a one-shot container job may
	// share the daemon's configuration without mounting the token.
	NoHTTP bool
}

// Parse is Load on bytes; name labels the messages. The steps stay
// visible: strict decode, then defaults, then validation, which reports
// every problem at once, sorted by position.
func Parse(name string, b []byte) (*Config, error) { return ParseWith(name, b, Options{}) }

// ParseWith is Parse with options.
func ParseWith(name string, b []byte, o Options) (*Config, error) {
	f := &strictyaml.File{Name: name, Data: b, Example: "configs/example.yaml"}
	c := &Config{}
	if err := f.Decode(c); err != nil {
		return nil, err
	}
	c.Path = name
	v := &validator{c: c, f: f, opts: o}
	v.run()
	if err := v.probs.Err(); err != nil {
		return nil, err
	}
	return c, nil
}
