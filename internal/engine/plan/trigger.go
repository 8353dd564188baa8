package plan

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Trigger is when a streaming query processes its next micro-batch.
type Trigger struct {
	// Type is processing_time, continuous, once or available_now.
	Type string
	// Interval is set for processing_time and continuous.
	Interval time.Duration
}

// Trigger types, as tauro spells them.
const (
	TriggerProcessingTime = "processing_time"
	TriggerContinuous     = "continuous"
	TriggerOnce           = "once"
	TriggerAvailableNow   = "available_now"
)

// defaultTrigger is tauro's default for a streaming node without one.
var defaultTrigger = Trigger{Type: TriggerProcessingTime, Interval: 10 * time.Second}

var intervalUnits = map[string]time.Duration{
	"second": time.Second, "seconds": time.Second,
	"minute": time.Minute, "minutes": time.Minute,
	"hour": time.Hour, "hours": time.Hour,
	"day": 24 * time.Hour, "days": 24 * time.Hour,
}

// maxInterval is a year: a longer trigger is a typo, not a schedule.
const maxInterval = 365 * 24 * time.Hour

// ParseTriggerInterval reads a streaming trigger interval written as
// "<whole number> <unit>" with unit second(s), minute(s), hour(s) or day(s),
// in any case and with any spacing ("10 seconds", "5  MINUTES"). It must be
// positive and at most 365 days. Spark would accept sub-second intervals,
// but tauro's validator sets a one-second floor, and a pipeline valid here
// must be valid there too.
func ParseTriggerInterval(v any) (time.Duration, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("trigger interval must be a string like \"10 seconds\", got %s", typeName(v))
	}
	return parseInterval(s)
}

func parseInterval(s string) (time.Duration, error) {
	const help = `write "<whole number> <unit>" with unit seconds, minutes, hours or days, e.g. "30 seconds"`
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, fmt.Errorf("invalid trigger interval %s: %s", q(s), help)
	}
	unit, ok := intervalUnits[strings.ToLower(f[1])]
	if !ok {
		return 0, fmt.Errorf("invalid trigger interval %s: unknown unit %s; %s", q(s), q(f[1]), help)
	}
	for _, c := range f[0] {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("invalid trigger interval %s: %s is not a whole number; %s", q(s), q(f[0]), help)
		}
	}
	n, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil || n > uint64(maxInterval/unit) {
		return 0, fmt.Errorf("invalid trigger interval %s: longer than the maximum of 365 days", q(s))
	}
	if n == 0 {
		return 0, errors.New("invalid trigger interval " + q(s) + ": must be greater than zero")
	}
	return time.Duration(n) * unit, nil
}
