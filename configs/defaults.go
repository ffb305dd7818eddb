package configs

import (
	"reflect"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/notify"
)

// DefaultJobSettings are the built-in job settings: what a job gets for a
// key that neither it nor the defaults section sets.
var DefaultJobSettings = JobSettings{
	Timeout:   Duration(2 * time.Hour),
	OnTimeout: pbirefresh.TimeoutCancel,
	WhenBusy:  pbirefresh.BusyWait,
	// Polling at 1 s at the least keeps the detection lag within max(2 s,
	// 2% of the duration) once a dataset has history, with a twelfth of a
	// fixed 5 s poller's polls (refresh's BenchmarkFollowing).
	Poll:         Poll{MinInterval: Duration(time.Second), MaxInterval: Duration(2 * time.Minute)},
	HistoryGrace: Duration(2 * time.Minute),
	Timezone:     "UTC",
	Overlap:      pbirefresh.OverlapSkip,
	CatchUp:      new(Duration),
	Jitter:       new(Duration),
	JitterMode:   pbirefresh.JitterRandom,
	DST:          DSTPolicy{Gap: pbirefresh.GapShift, Repeat: pbirefresh.RepeatFirst},
}

// DefaultConfig holds the built-in values of the keys outside jobs.
var DefaultConfig = Config{
	Cloud:           "public",
	Secrets:         SecretSettings{CacheTTL: Duration(time.Hour)},
	State:           State{Path: "pbirefresh.db", Retention: Retention{Count: 1000, Age: Duration(90 * 24 * time.Hour)}},
	ShutdownTimeout: Duration(30 * time.Second),
	HTTP:            HTTP{Listen: "127.0.0.1:9464"},
}

// DefaultNotifyTarget holds a notification target's built-in values.
var DefaultNotifyTarget = NotifyTarget{On: notify.Kinds(), Timeout: Duration(10 * time.Second), Retries: ptr(3)}

func ptr[T any](v T) *T { return &v }

// merge fills every zero field of *dst with src's, recursing into nested
// structs: the list of fields is written once, in the types, as
// Prometheus's configuration does with its Default values.
func merge[T any](dst *T, src T) {
	mergeValue(reflect.ValueOf(dst).Elem(), reflect.ValueOf(src))
}

func mergeValue(dst, src reflect.Value) {
	for i := range dst.NumField() {
		d, s := dst.Field(i), src.Field(i)
		switch {
		case !d.CanSet():
		case d.Kind() == reflect.Struct:
			mergeValue(d, s)
		case d.IsZero():
			d.Set(s)
		}
	}
}
