package accesslog

import (
	"testing"
	"time"
)

// A line's time is what AppendFormat gives, though each second is formatted once: for times in
// the same second, the next, an earlier one, and after time.Local changed.
func TestStampCacheFormatsEachTime(t *testing.T) {
	defer func(l *time.Location) { time.Local = l }(time.Local)
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.FixedZone("CET", 3600)
	}
	base := time.Date(2026, 12, 6, 12, 35, 56, 0, time.UTC)
	times := []time.Duration{0, 999 * time.Millisecond, 1500 * time.Millisecond, 0, 2*time.Second + time.Millisecond, -time.Hour}
	for _, loc := range []*time.Location{time.UTC, paris, time.UTC} {
		time.Local = loc
		for _, d := range times {
			tm := base.Add(d)
			if got, want := string(combinedTime.append(nil, tm)), tm.Local().Format("02/Jan/2006:15:04:05 -0700"); got != want {
				t.Errorf("combined time of %v in %v = %q; want %q", tm, loc, got, want)
			}
			if got, want := string(jsonTime.append(nil, tm)), tm.UTC().Format("2006-01-02T15:04:05"); got != want {
				t.Errorf("JSON time of %v = %q; want %q", tm, got, want)
			}
		}
	}
}
