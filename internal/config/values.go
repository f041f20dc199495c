package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Workers is a worker count: a positive number or "auto".
type Workers struct {
	Auto bool
	N    int
}

// ParseWorkers reads "auto" or a number.
func ParseWorkers(s string) (Workers, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "auto") {
		return Workers{Auto: true}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return Workers{}, fmt.Errorf("%q is neither a number nor \"auto\"", s)
	}
	return Workers{N: n}, nil
}

func (w *Workers) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case int64:
		*w = Workers{N: int(v)}
		return nil
	case string:
		return w.Set(v)
	}
	return fmt.Errorf("want a number or \"auto\", got %T", v)
}

// Set reads s as ParseWorkers does, for flag.Value; on error w is unchanged.
func (w *Workers) Set(s string) error {
	p, err := ParseWorkers(s)
	if err == nil {
		*w = p
	}
	return err
}

func (w Workers) String() string {
	if w.Auto {
		return "auto"
	}
	return strconv.Itoa(w.N)
}

// Size is a byte count, written as a number of bytes or with a K, M or G suffix (powers of 1024).
type Size int64

// ParseSize reads "16M", "512k", "1G" or "4096".
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size (bytes, or a number with K, M or G)", s)
	}
	return Size(n * mult), nil
}

func (z *Size) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case int64:
		if v < 0 {
			return fmt.Errorf("size %d is negative", v)
		}
		*z = Size(v)
		return nil
	case string:
		return z.Set(v)
	}
	return fmt.Errorf("want a size such as \"16M\", got %T", v)
}

// Set reads s as ParseSize does, for flag.Value; on error z is unchanged.
func (z *Size) Set(s string) error {
	p, err := ParseSize(s)
	if err == nil {
		*z = p
	}
	return err
}

func (z Size) String() string {
	n := int64(z)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// Duration is a time span, written as whole seconds (as the original askr does) or as a number with
// a unit: "500ms", "30s", "2m", "1h".
type Duration time.Duration

// ParseDuration reads "30", "30s" or "1m30s".
func ParseDuration(s string) (Duration, error) {
	t := strings.TrimSpace(s)
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		return seconds(n)
	}
	d, err := time.ParseDuration(t)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration (seconds, or a number with ms, s, m or h)", s)
	}
	return Duration(d), nil
}

func (d *Duration) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case int64:
		p, err := seconds(v)
		*d = p
		return err
	case string:
		return d.Set(v)
	}
	return fmt.Errorf("want seconds or a duration such as \"30s\", got %T", v)
}

// Set reads s as ParseDuration does, for flag.Value; on error d is unchanged.
func (d *Duration) Set(s string) error {
	p, err := ParseDuration(s)
	if err == nil {
		*d = p
	}
	return err
}

func seconds(n int64) (Duration, error) {
	if n < 0 {
		return 0, fmt.Errorf("duration %d is negative", n)
	}
	if n > int64(math.MaxInt64/time.Second) {
		return 0, fmt.Errorf("duration of %d seconds is out of range", n)
	}
	return Duration(time.Duration(n) * time.Second), nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }
