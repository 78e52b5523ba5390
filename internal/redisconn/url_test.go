package redisconn

import (
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		cfg       Config
		mode      Mode
		addrs     []string
		user      string
		password  string
		db        int
		master    string
		tls       bool
		single    bool
		wantError string // substring; empty means success
	}{
		{name: "plain", cfg: Config{URL: "redis://localhost:6379/0"}, addrs: []string{"localhost:6379"}, single: true},
		{name: "default port and db", cfg: Config{URL: "redis://cache.internal"}, addrs: []string{"cache.internal:6379"}, single: true},
		{name: "trailing slash", cfg: Config{URL: "redis://h:1/"}, addrs: []string{"h:1"}, single: true},
		{name: "db", cfg: Config{URL: "redis://h:6380/15"}, addrs: []string{"h:6380"}, db: 15, single: true},
		{name: "user and password", cfg: Config{URL: "redis://app:s3cret@h:6379/2"}, addrs: []string{"h:6379"},
			user: "app", password: "s3cret", db: 2, single: true},
		{name: "password only", cfg: Config{URL: "redis://:pw@localhost:6379/0"}, addrs: []string{"localhost:6379"},
			password: "pw", single: true},
		{name: "password with @ and :", cfg: Config{URL: "redis://u:p@ss:w@h/0"}, addrs: []string{"h:6379"},
			user: "u", password: "p@ss:w", single: true},
		{name: "percent-encoded password", cfg: Config{URL: "redis://u:a%2Fb%3Fc%23d%25@h/0"}, addrs: []string{"h:6379"},
			user: "u", password: "a/b?c#d%", single: true},
		{name: "fallback password", cfg: Config{URL: "redis://h/0", Password: "fromenv"}, addrs: []string{"h:6379"},
			password: "fromenv", single: true},
		{name: "fallback password with user", cfg: Config{URL: "redis://bob@h/0", Password: "fromenv"}, addrs: []string{"h:6379"},
			user: "bob", password: "fromenv", single: true},
		{name: "url password wins", cfg: Config{URL: "redis://:inurl@h/0", Password: "fromenv"}, addrs: []string{"h:6379"},
			password: "inurl", single: true},
		{name: "ipv6", cfg: Config{URL: "redis://[::1]:7000/1"}, addrs: []string{"[::1]:7000"}, db: 1, single: true},
		{name: "ipv6 default port", cfg: Config{URL: "redis://[fe80::1%25eth0]"}, addrs: []string{"[fe80::1%eth0]:6379"}, single: true},
		{name: "uppercase scheme", cfg: Config{URL: "REDIS://h"}, addrs: []string{"h:6379"}, single: true},
		{name: "tls", cfg: Config{URL: "rediss://u:p@h:6380/0"}, addrs: []string{"h:6380"}, user: "u", password: "p", tls: true, single: true},
		{name: "cluster", cfg: Config{URL: "redis+cluster://a:7000,b:7001,c/"}, mode: Cluster,
			addrs: []string{"a:7000", "b:7001", "c:6379"}},
		{name: "cluster db 0", cfg: Config{URL: "redis+cluster://a:7000/0"}, mode: Cluster, addrs: []string{"a:7000"}},
		{name: "cluster tls", cfg: Config{URL: "rediss+cluster://a:7000"}, mode: Cluster, addrs: []string{"a:7000"}, tls: true},
		{name: "sentinel", cfg: Config{URL: "redis+sentinel://u:p@s1:26379,s2/mymaster/3"}, mode: Sentinel,
			addrs: []string{"s1:26379", "s2:26379"}, user: "u", password: "p", db: 3, master: "mymaster"},
		{name: "sentinel no db", cfg: Config{URL: "redis+sentinel://s1:26380/mymaster"}, mode: Sentinel,
			addrs: []string{"s1:26380"}, master: "mymaster"},

		{name: "empty", cfg: Config{}, wantError: "empty"},
		{name: "no scheme", cfg: Config{URL: "localhost:6379"}, wantError: "missing scheme"},
		{name: "unknown scheme", cfg: Config{URL: "http://h:6379"}, wantError: "unknown scheme"},
		{name: "unix scheme", cfg: Config{URL: "unix:///tmp/redis.sock"}, wantError: "unknown scheme"},
		{name: "bad port", cfg: Config{URL: "redis://h:abc/0"}, wantError: "bad port"},
		{name: "port zero", cfg: Config{URL: "redis://h:0/0"}, wantError: "bad port"},
		{name: "port too big", cfg: Config{URL: "redis://h:65536/0"}, wantError: "bad port"},
		{name: "empty port", cfg: Config{URL: "redis://h:/0"}, wantError: "bad port"},
		{name: "missing host", cfg: Config{URL: "redis:///0"}, wantError: "missing host"},
		{name: "missing host before port", cfg: Config{URL: "redis://:6379/0"}, wantError: "missing host name"},
		{name: "bad host", cfg: Config{URL: "redis://h st:1/0"}, wantError: "bad host name"},
		{name: "bad db", cfg: Config{URL: "redis://h/x"}, wantError: "bad database"},
		{name: "negative db", cfg: Config{URL: "redis://h/-1"}, wantError: "bad database"},
		{name: "db with extra path", cfg: Config{URL: "redis://h/1/2"}, wantError: "bad database"},
		{name: "several hosts standalone", cfg: Config{URL: "redis://a,b/0"}, wantError: "use redis+cluster://"},
		{name: "query", cfg: Config{URL: "redis://h/0?dial_timeout=1s"}, wantError: "query parameters"},
		{name: "cluster db", cfg: Config{URL: "redis+cluster://a:7000/1"}, wantError: "only database 0"},
		{name: "cluster bad port", cfg: Config{URL: "redis+cluster://a:7000,b:x"}, wantError: "host 2 of 2: bad port"},
		{name: "sentinel missing master", cfg: Config{URL: "redis+sentinel://s1:26379"}, wantError: "missing master name"},
		{name: "sentinel missing master slash", cfg: Config{URL: "redis+sentinel://s1:26379/"}, wantError: "missing master name"},
		{name: "sentinel bad db", cfg: Config{URL: "redis+sentinel://s1/m/x"}, wantError: "bad database"},
		{name: "bad escape", cfg: Config{URL: "redis://u:%zz@h/0"}, wantError: "malformed"},
		{name: "unclosed ipv6", cfg: Config{URL: "redis://[::1:6379/0"}, wantError: "unclosed"},
		{name: "negative replicas", cfg: Config{URL: "redis://h", MinReplicasAck: -1}, wantError: "MinReplicasAck"},
		{name: "negative retry", cfg: Config{URL: "redis://h", Retry: RetryPolicy{Attempts: -1}}, wantError: "negative"},
		{name: "tls options on plain url", cfg: Config{URL: "redis://h", TLS: TLSOptions{Verify: "none"}}, wantError: "use rediss://"},
		{name: "bad verify", cfg: Config{URL: "rediss://h", TLS: TLSOptions{Verify: "sometimes"}}, wantError: "TLS.Verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opt, mode, err := Parse(tt.cfg)
			if tt.wantError != "" {
				if err == nil {
					t.Fatalf("Parse(%q) succeeded; want error containing %q", tt.cfg.URL, tt.wantError)
				}
				if !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("Parse(%q) error %q; want it to contain %q", tt.cfg.URL, err, tt.wantError)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.cfg.URL, err)
			}
			if mode != tt.mode {
				t.Errorf("mode %v; want %v", mode, tt.mode)
			}
			if !slices.Equal(opt.InitAddress, tt.addrs) {
				t.Errorf("addrs %q; want %q", opt.InitAddress, tt.addrs)
			}
			if opt.Username != tt.user || opt.Password != tt.password {
				t.Errorf("credentials %q/%q; want %q/%q", opt.Username, opt.Password, tt.user, tt.password)
			}
			if opt.SelectDB != tt.db {
				t.Errorf("db %d; want %d", opt.SelectDB, tt.db)
			}
			if opt.Sentinel.MasterSet != tt.master {
				t.Errorf("master %q; want %q", opt.Sentinel.MasterSet, tt.master)
			}
			if (opt.TLSConfig != nil) != tt.tls {
				t.Errorf("TLS %v; want %v", opt.TLSConfig != nil, tt.tls)
			}
			if mode == Sentinel && (opt.Sentinel.TLSConfig != nil) != tt.tls {
				t.Errorf("sentinel TLS %v; want %v", opt.Sentinel.TLSConfig != nil, tt.tls)
			}
			if opt.ForceSingleClient != tt.single {
				t.Errorf("ForceSingleClient %v; want %v", opt.ForceSingleClient, tt.single)
			}
			if !opt.DisableCache {
				t.Error("client-side cache on; want off by default")
			}
			if opt.Dialer.Timeout != DefaultDialTimeout {
				t.Errorf("dial timeout %v; want %v", opt.Dialer.Timeout, DefaultDialTimeout)
			}
		})
	}
}

func TestParseOptions(t *testing.T) {
	t.Parallel()
	opt, _, err := Parse(Config{
		URL:              "redis+sentinel://s1/m",
		ClientSideCache:  true,
		DialTimeout:      123,
		ClientName:       "worker",
		SentinelUsername: "su",
		SentinelPassword: "sp",
		Password:         "mp",
	})
	if err != nil {
		t.Fatal(err)
	}
	if opt.DisableCache || opt.Dialer.Timeout != 123 || opt.ClientName != "worker" {
		t.Errorf("options not applied: cache off %v, timeout %v, name %q", opt.DisableCache, opt.Dialer.Timeout, opt.ClientName)
	}
	if opt.Sentinel.Username != "su" || opt.Sentinel.Password != "sp" || opt.Password != "mp" {
		t.Errorf("sentinel credentials %q/%q, primary password %q", opt.Sentinel.Username, opt.Sentinel.Password, opt.Password)
	}
}

func TestURLErrorIsTyped(t *testing.T) {
	t.Parallel()
	_, _, err := Parse(Config{URL: "redis://u:topsecret@h:bad/0"})
	var ue *URLError
	if !errors.As(err, &ue) {
		t.Fatalf("error %v (%T); want *URLError", err, err)
	}
	if ue.Redacted != "redis://u:xxxxx@h:bad/0" {
		t.Errorf("Redacted %q", ue.Redacted)
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"redis://user:secret@h:6379/0", "redis://user:xxxxx@h:6379/0"},
		{"redis://:secret@h:6379/0", "redis://:xxxxx@h:6379/0"},
		{"rediss://u:p%2Fq@h/0", "rediss://u:xxxxx@h/0"},
		{"redis://u:pa/ss@h/0", "redis://u:xxxxx@h/0"},
		{"redis://u:p@ss@h/0", "redis://u:xxxxx@h/0"},
		{"redis+sentinel://u:pw@s1:26379,s2:26379/m/0", "redis+sentinel://u:xxxxx@s1:26379,s2:26379/m/0"},
		{"redis://user@h/0", "redis://user@h/0"},
		{"redis://user:@h/0", "redis://user:@h/0"},
		{"redis://h:6379/0", "redis://h:6379/0"},
		{"u:secret@h", "u:xxxxx@h"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzParse checks that Parse never panics and that no error, for any input,
// carries the password: neither the one the parser extracted from the URL nor
// the fallback one from the configuration.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"redis://u:p@h:6379/0", "redis+cluster://a:1,b:2/", "redis+sentinel://u:p@s:26379/m/1",
		"rediss://[::1]:6380/0", "redis://u:pa/ss@h/0", "redis://u:p@h:bad/0", "redis://h/x",
	} {
		f.Add(s, "fallbackpw")
	}
	f.Fuzz(func(t *testing.T, raw, fallback string) {
		_, _, err := Parse(Config{URL: raw, Password: fallback})
		if err == nil {
			return
		}
		// The redacted URL is quoted on purpose; look for leaks elsewhere.
		msg := strings.ReplaceAll(err.Error(), strconv.Quote(Redact(raw)), "")
		templates := strings.Join(strings.Fields(errorTemplates), " ")
		if len(fallback) >= 4 && strings.Contains(msg, fallback) && !strings.Contains(templates, fallback) {
			t.Fatalf("error %q holds the fallback password %q", msg, fallback)
		}
		// The password as the parser sees it: after the first ':' of the
		// user information, which ends at the authority's last '@'.
		scheme, rest, ok := strings.Cut(raw, "://")
		if !ok || scheme == "" {
			return
		}
		authority := rest
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			authority = rest[:i]
		}
		at := strings.LastIndexByte(authority, '@')
		if at < 0 {
			return
		}
		_, pw, _ := strings.Cut(authority[:at], ":")
		for _, secret := range []string{pw, unescapeOrEmpty(pw)} {
			if len(secret) >= 4 && strings.Contains(msg, secret) && !strings.Contains(templates, secret) {
				t.Fatalf("error %q holds the password %q of %q", msg, secret, raw)
			}
		}
	})
}

// errorTemplates is the fixed text errors are built from; a "password" that
// happens to be a word of it is not a leak.
const errorTemplates = `redisconn: invalid Redis URL "xxxxx": empty; want redis://host:port/db missing scheme; want
redis://, rediss://, redis+cluster:// or redis+sentinel:// unknown scheme; want redis, rediss, redis+cluster,
rediss+cluster, redis+sentinel or rediss+sentinel query parameters and fragments are not supported; set options in
the configuration instead the user name has a malformed %-escape the password has a malformed %-escape
missing host; want host:port after the scheme hosts given for one server; use redis+cluster:// or
redis+sentinel:// for several host of : missing master name; want
redis+sentinel://host:26379,host:26379/mastername/db the master name must be printable, without spaces Redis
Cluster has only database 0; drop the /db part or use /0 unclosed '[' in an IPv6 address unexpected text after
an IPv6 address; want [addr]:port bad IPv6 address in brackets missing host name before the port bad host name;
use letters, digits, '.', '-', '_' or a bracketed IPv6 address bad port; want a number from 1 to 65535 bad
database number; want /N with N a whole number from 0`

func unescapeOrEmpty(s string) string {
	u, err := url.PathUnescape(s)
	if err != nil {
		return ""
	}
	return u
}
