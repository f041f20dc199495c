package config

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// This file is the one place that knows the askr.toml keys of the original askr which this version
// does not implement. They decode with the types the original accepts, so that an original file
// loads (a wrong type is still an error with file:line). Each key then either asks for nothing —
// it is absent or has the original's default or off value — and is accepted silently, or is
// reported once: a Notice when this version can ignore it and say what happens instead, an Error
// when ignoring it would change security or correctness. A key that a later version implements
// moves from here into Config.

// support says what this version does with a key of the original askr.toml.
type support int

const (
	implemented support = iota // a Config field does what the original's key does
	ignored                    // accepted; a Notice when it asks for something
	refused                    // accepted only with the original's off value; else an Error
	partOf                     // only configures the feature of another key (originalKey.of)
)

// originalKey is one key of the original askr.toml.
type originalKey struct {
	key  string
	what support
	of   string // for partOf: the key whose feature this one configures
	// msg says, after "not supported by this version; ", what happens instead (ignored) or why the
	// key is refused and what to do (refused); for implemented keys, any difference in behaviour.
	msg string
}

// originalKeys lists every key of the original askr.toml, in the order of its documentation. An
// array of tables ([[site]]) is one key: its entries are reported at its first header.
var originalKeys = []originalKey{
	{key: "server.listen", msg: "also takes a host name or a port alone"},
	{key: "server.root"},
	{key: "server.front"},
	{key: "server.workers", msg: "also takes a number (the original wants a string)"},
	{key: "server.workers_min", msg: "scales in every mode, not only with --cow (a new worker is a warm fork only there)"},
	{key: "server.workers_max", msg: "scales in every mode, not only with --cow"},
	{key: "server.max_requests"},
	{key: "server.max_rss", msg: "also max_private_memory, which does not count memory a CoW worker shares"},
	{key: "server.shadow_to", what: ignored, msg: "requests are not mirrored"},
	{key: "server.shadow_sample", what: partOf, of: "server.shadow_to"},
	{key: "server.max_body_size"},
	{key: "server.https"},
	{key: "server.force_https", msg: "ACME's challenges are answered, not redirected; X-Forwarded-Proto counts only from trusted_proxies; after [[redirect]] (the original redirects to HTTPS first), and to the HTTPS listener's port, not the Host's"},
	{key: "server.http_redirect", msg: "redirects without force_https too (it is what that address is for)"},
	{key: "server.traffic_log", what: ignored, msg: "no traffic log is written"},
	{key: "server.trusted_proxies", msg: "also sets HTTPS from X-Forwarded-Proto and HTTP_HOST from X-Forwarded-Host; proxy_protocol reads a PROXY header from them; a chain of trusted addresses only gives its leftmost (the original: the peer), as nginx's real_ip_recursive"},
	{key: "server.access_log", msg: "the combined log format by default; access_log_format = \"json\" for JSON lines"},
	{key: "server.http3", what: ignored, msg: "HTTP/3 is not served: HTTPS clients get HTTP/2 or HTTP/1.1"},
	{key: "server.tls_handshake_timeout", what: ignored, msg: "the TLS handshake is bounded by server.header_read_timeout instead"},
	{key: "server.header_read_timeout", msg: "also bounds the TLS handshake; also takes a unit (\"500ms\")"},
	{key: "server.sandbox", what: refused, msg: "the workers would not be confined by seccomp. Confine them with systemd: " +
		"askr.service sets NoNewPrivileges=, ProtectSystem=strict and SystemCallFilter=; tighten it in a drop-in " +
		"(systemctl edit askr), e.g. with NoExecPaths= and ExecPaths="},
	{key: "server.sandbox_write", what: refused, msg: "the workers' writes would not be restricted to these paths. " +
		"Restrict them with systemd: askr.service sets ProtectSystem=strict; list the paths with ReadWritePaths= " +
		"in a drop-in (systemctl edit askr)"},

	{key: "worker.script"},
	{key: "worker.app_base"},
	{key: "worker.ini"},
	{key: "worker.paranoid", msg: "logs the first difference of each kind with its route, at most once a minute per kind; watches Laravel's session, auth, queued cookies and transactions too"},

	{key: "tls.cert"},
	{key: "tls.key"},
	{key: "tls.self_signed", msg: "an ECDSA certificate made in memory at startup for localhost, the loopback addresses and the listen host"},

	{key: "acme.enabled", msg: "also answers TLS-ALPN-01 on the https socket; the certificate is obtained in the background while plain HTTP serves"},
	{key: "acme.domains"},
	{key: "acme.email"},
	{key: "acme.dir"},
	{key: "acme.staging"},
	{key: "acme.directory_url"},
	{key: "acme.http", msg: "only without systemd; under systemd the \"http\" socket answers the challenges"},
	{key: "acme.ca_root"},

	{key: "admin.listen", msg: "served only with [admin] token_file (ASKR_ADMIN_TOKEN is not read); the API is on [admin] socket"},

	{key: "queue.workers", msg: "also in CoW mode, where each is forked from the template after askr_cow_ready(); no shared-memory queue is needed ([queue] slots)"},
	{key: "queue.workers_max", msg: "accepted as the bound for scaling on backlog; this version runs queue.workers of them"},
	{key: "queue.script"},
	{key: "queue.slots", what: ignored, msg: "there is no shared-memory job queue: askr_queue_*() are not defined"},

	{key: "scheduler.script", msg: "run by askrd at each whole minute (scheduler.interval), never two at once"},

	{key: "cache.slots", what: ignored, msg: "there is no shared-memory cache: askr_cache_*() are not defined"},
	{key: "cache.large_slots", what: ignored, msg: "there is no shared-memory cache for large values"},
	{key: "cache.response_slots", what: ignored, msg: "responses are not cached: every request runs PHP"},
	{key: "cache.strip_query_params", what: partOf, of: "cache.response_slots"},
	{key: "cache.ignore_cookies", what: partOf, of: "cache.response_slots"},
	{key: "cache.vary_user_agent", what: partOf, of: "cache.response_slots"},
	{key: "cache.saint_seconds", what: partOf, of: "cache.response_slots"},
	{key: "cache.persist", what: partOf, of: "cache.response_slots"},
	{key: "cache.persist_key", what: partOf, of: "cache.response_slots"},
	{key: "cache.rule", what: partOf, of: "cache.response_slots"},

	{key: "broadcast.enabled", what: ignored, msg: "there is no broadcast ring: askr_broadcast() is not defined and /askr/events goes to PHP"},
	{key: "pusher.enabled", what: ignored, msg: "there is no Pusher-compatible endpoint: /app/ and /apps/ go to PHP"},
	{key: "pusher.secret", what: partOf, of: "pusher.enabled"},
	{key: "record.dir", what: ignored, msg: "failing requests are not recorded"},

	{key: "reload.canary", msg: "also in CoW mode, where a reload boots a new template"},
	{key: "reload.canary_window"},
	{key: "reload.canary_min_requests"},
	{key: "reload.canary_max_error_rate"},
	{key: "reload.canary_max_latency_factor"},

	{key: "sidecar", msg: "also in CoW mode; name, count, restart and grace are askr's own keys"},
	{key: "redirect", msg: "answered before static files and PHP; from is a host or *.suffix, to gets the path and query, status defaults to 308"},
	{key: "site", what: refused, msg: "requests for those hosts would be served by the wrong application; " +
		"run one askrd per application"},
	{key: "ratelimit", what: refused, msg: "requests would not be limited; limit them in the proxy in front"},
}

// natural is a whole number from 0 up, as the original's usize and u64 keys take.
type natural uint64

func (n *natural) UnmarshalTOML(v any) error {
	i, ok := v.(int64)
	if !ok {
		return fmt.Errorf("want a whole number, got %T", v)
	}
	if i < 0 {
		return fmt.Errorf("%d is negative", i)
	}
	*n = natural(i)
	return nil
}

// original holds the keys of the original askr.toml that are not Config fields, with the types the
// original accepts (Option<T> as *T). originalDefaults fills in its defaults.
type original struct {
	Server struct {
		ShadowTo            *string  `toml:"shadow_to"`
		ShadowSample        uint8    `toml:"shadow_sample"`
		TrafficLog          *string  `toml:"traffic_log"`
		HTTP3               bool     `toml:"http3"`
		TLSHandshakeTimeout natural  `toml:"tls_handshake_timeout"`
		Sandbox             bool     `toml:"sandbox"`
		SandboxWrite        []string `toml:"sandbox_write"`
	} `toml:"server"`
	Queue struct {
		Slots natural `toml:"slots"`
	} `toml:"queue"`
	Cache struct {
		Slots            natural  `toml:"slots"`
		LargeSlots       natural  `toml:"large_slots"`
		ResponseSlots    natural  `toml:"response_slots"`
		StripQueryParams []string `toml:"strip_query_params"`
		IgnoreCookies    []string `toml:"ignore_cookies"`
		VaryUserAgent    bool     `toml:"vary_user_agent"`
		SaintSeconds     natural  `toml:"saint_seconds"`
		Persist          *string  `toml:"persist"`
		PersistKey       *string  `toml:"persist_key"`
		Rule             []struct {
			Path         string   `toml:"path"`
			Action       *string  `toml:"action"`
			TTL          *natural `toml:"ttl"`
			SWR          natural  `toml:"swr"`
			StaleIfError natural  `toml:"stale_if_error"`
			Force        bool     `toml:"force"`
		} `toml:"rule"`
	} `toml:"cache"`
	Broadcast struct {
		Enabled bool `toml:"enabled"`
	} `toml:"broadcast"`
	Pusher struct {
		Enabled bool    `toml:"enabled"`
		Secret  *string `toml:"secret"`
	} `toml:"pusher"`
	Record struct {
		Dir *string `toml:"dir"`
	} `toml:"record"`
	Site []struct {
		Hosts []string `toml:"hosts"`
		Root  string   `toml:"root"`
		Front string   `toml:"front"`
	} `toml:"site"`
	Ratelimit []struct {
		Path   string  `toml:"path"`
		Limit  natural `toml:"limit"`
		Window natural `toml:"window"`
		By     string  `toml:"by"`
		Burst  natural `toml:"burst"`
	} `toml:"ratelimit"`
}

// originalDefaults returns the original's defaults for the keys of original; the zero value
// (absent, false, 0, empty) is the default of the others.
func originalDefaults() original {
	var o original
	o.Server.ShadowSample = 100
	o.Server.TLSHandshakeTimeout = 10
	return o
}

// Notice is a key of the original askr.toml that this version accepts but does not implement,
// with what happens instead. askrd serve logs each once at startup; config-check lists them.
type Notice struct {
	File string
	Line int // 0 when unknown
	Key  string
	Msg  string
}

func (n Notice) String() string {
	return (&Error{File: n.File, Line: n.Line, Key: n.Key, Msg: n.Msg}).Error()
}

// notSupported starts the message of every Notice and of every refusal.
const notSupported = "not supported by this version; "

// decodeOriginal decodes the keys of src that Config left undecoded (und) as keys of the original
// askr.toml. It returns the notices for the ones that ask for something this version ignores, and
// an Error for an unknown key, a wrong type, or a refused key that asks for something.
func decodeOriginal(src []byte, path string, und []toml.Key, lines map[string]int) ([]Notice, error) {
	if len(und) == 0 {
		return nil, nil
	}
	o := originalDefaults()
	md, err := toml.NewDecoder(bytes.NewReader(src)).Decode(&o)
	if err != nil {
		return nil, decodeErr(err, path)
	}
	unknown := map[string]bool{}
	for _, k := range md.Undecoded() {
		unknown[k.String()] = true
	}
	for _, k := range und {
		if unknown[k.String()] {
			return nil, &Error{File: path, Line: lineOf(lines, k.String()), Key: k.String(), Msg: "unknown key"}
		}
	}
	def := originalDefaults()
	var notices []Notice
	for _, ok := range originalKeys {
		if (ok.what != ignored && ok.what != refused) || !asks(&o, &def, ok.key) {
			continue
		}
		n := Notice{File: path, Line: lineOf(lines, ok.key), Key: ok.key, Msg: notSupported + ok.msg}
		if ok.what == refused {
			e := Error(n)
			return nil, &e
		}
		notices = append(notices, n)
	}
	slices.SortStableFunc(notices, func(a, b Notice) int { return a.Line - b.Line })
	return notices, nil
}

// asks reports whether key of o differs from its value in def, the original's default; an empty
// list is the default of every list.
func asks(o, def *original, key string) bool {
	v, d := field(reflect.ValueOf(o).Elem(), key), field(reflect.ValueOf(def).Elem(), key)
	if v.Kind() == reflect.Slice {
		return v.Len() > 0
	}
	return !reflect.DeepEqual(v.Interface(), d.Interface())
}

// field finds the field of v that the dotted TOML key names.
func field(v reflect.Value, key string) reflect.Value {
	for name := range strings.SplitSeq(key, ".") {
		t := v.Type()
		i := 0
		for ; i < t.NumField() && t.Field(i).Tag.Get("toml") != name; i++ {
		}
		if i == t.NumField() {
			panic("config: original has no key " + key)
		}
		v = v.Field(i)
	}
	return v
}
