package redisconn

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Mode is the topology a URL asks for.
type Mode int

const (
	// Standalone is one server: redis:// and rediss://.
	Standalone Mode = iota
	// Cluster is a Redis Cluster: redis+cluster:// and rediss+cluster://.
	Cluster
	// Sentinel is a primary found through Redis Sentinel:
	// redis+sentinel:// and rediss+sentinel://.
	Sentinel
)

// String returns the mode's name as used in logs and errors.
func (m Mode) String() string {
	switch m {
	case Standalone:
		return "standalone"
	case Cluster:
		return "cluster"
	case Sentinel:
		return "sentinel"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

const (
	defaultPort         = "6379"
	defaultSentinelPort = "26379"
	// maxDB bounds the database number; Redis itself refuses indexes past
	// its "databases" setting, this only rejects nonsense early.
	maxDB = 1<<31 - 1
)

// URLError reports a URL that cannot be used. It quotes the URL only in
// redacted form and never echoes pieces of the raw text, so a password that
// sits in an unexpected place (an unencoded '/' in it, say) cannot leak
// through it into logs.
type URLError struct {
	// Redacted is the URL as Redact prints it.
	Redacted string
	// Reason says what is wrong and how to fix it.
	Reason string
}

func (e *URLError) Error() string {
	return fmt.Sprintf("invalid Redis URL %q: %s", e.Redacted, e.Reason)
}

// target is a parsed URL.
type target struct {
	mode      Mode
	tls       bool
	addrs     []string // host:port, in URL order
	username  string
	password  string
	db        int
	masterSet string
}

// parseURL splits raw into its parts. The grammar is the usual URL one:
// the authority ends at the first '/', '?' or '#', and the user information
// ends at the last '@' of the authority, so a password holding '/', '?', '#'
// or '%' must be percent-encoded, while '@' and ':' may appear as they are.
func parseURL(raw string) (target, error) {
	var t target
	fail := func(format string, args ...any) (target, error) {
		return target{}, &URLError{Redacted: Redact(raw), Reason: fmt.Sprintf(format, args...)}
	}
	if raw == "" {
		return fail("empty; want redis://host:port/db")
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return fail("missing scheme; want redis://, rediss://, redis+cluster:// or redis+sentinel://")
	}
	switch strings.ToLower(scheme) {
	case "redis":
	case "rediss":
		t.tls = true
	case "redis+cluster":
		t.mode = Cluster
	case "rediss+cluster":
		t.mode, t.tls = Cluster, true
	case "redis+sentinel":
		t.mode = Sentinel
	case "rediss+sentinel":
		t.mode, t.tls = Sentinel, true
	default:
		return fail("unknown scheme; want redis, rediss, redis+cluster, rediss+cluster, redis+sentinel or rediss+sentinel")
	}

	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	if strings.ContainsAny(tail, "?#") {
		return fail("query parameters and fragments are not supported; set options in the configuration instead")
	}

	hostlist := authority
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		userinfo := authority[:at]
		hostlist = authority[at+1:]
		user, pass, _ := strings.Cut(userinfo, ":")
		var err error
		if t.username, err = url.PathUnescape(user); err != nil {
			return fail("the user name has a malformed %%-escape")
		}
		if t.password, err = url.PathUnescape(pass); err != nil {
			return fail("the password has a malformed %%-escape")
		}
	}

	port := defaultPort
	if t.mode == Sentinel {
		port = defaultSentinelPort
	}
	if hostlist == "" {
		return fail("missing host; want host:port after the scheme")
	}
	hosts := strings.Split(hostlist, ",")
	if t.mode == Standalone && len(hosts) > 1 {
		return fail("%d hosts given for one server; use redis+cluster:// or redis+sentinel:// for several", len(hosts))
	}
	for i, h := range hosts {
		addr, reason := parseHostPort(h, port)
		if reason != "" {
			if len(hosts) > 1 {
				return fail("host %d of %d: %s", i+1, len(hosts), reason)
			}
			return fail("%s", reason)
		}
		t.addrs = append(t.addrs, addr)
	}

	path := strings.TrimPrefix(tail, "/")
	switch t.mode {
	case Sentinel:
		master, db, hasDB := strings.Cut(path, "/")
		if master == "" {
			return fail("missing master name; want redis+sentinel://host:26379,host:26379/mastername/db")
		}
		name, err := url.PathUnescape(master)
		if err != nil || !validMasterName(name) {
			return fail("the master name must be printable, without spaces")
		}
		t.masterSet = name
		if hasDB {
			if t.db, err = parseDB(db); err != nil {
				return fail("%v", err)
			}
		}
	default:
		if path != "" {
			db, err := parseDB(path)
			if err != nil {
				return fail("%v", err)
			}
			t.db = db
		}
		if t.mode == Cluster && t.db != 0 {
			return fail("Redis Cluster has only database 0; drop the /db part or use /0")
		}
	}
	return t, nil
}

// parseHostPort validates one "host[:port]" and returns it as host:port.
// The reason it gives never repeats the input.
func parseHostPort(h, defPort string) (addr, reason string) {
	host, port := h, defPort
	if strings.HasPrefix(h, "[") {
		closing := strings.IndexByte(h, ']')
		if closing < 0 {
			return "", "unclosed '[' in an IPv6 address"
		}
		// RFC 6874 writes the zone's '%' as "%25".
		host = strings.Replace(h[1:closing], "%25", "%", 1)
		switch after := h[closing+1:]; {
		case after == "":
		case strings.HasPrefix(after, ":"):
			port = after[1:]
		default:
			return "", "unexpected text after an IPv6 address; want [addr]:port"
		}
		if ip := net.ParseIP(stripZone(host)); ip == nil || ip.To4() != nil && !strings.Contains(host, ":") {
			return "", "bad IPv6 address in brackets"
		}
	} else {
		if i := strings.LastIndexByte(h, ':'); i >= 0 {
			host, port = h[:i], h[i+1:]
		}
		if host == "" {
			return "", "missing host name before the port"
		}
		if !validHostName(host) {
			return "", "bad host name; use letters, digits, '.', '-', '_' or a bracketed IPv6 address"
		}
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || port[0] == '+' || port[0] == '0' {
		return "", "bad port; want a number from 1 to 65535"
	}
	return net.JoinHostPort(host, port), ""
}

func stripZone(host string) string {
	if i := strings.IndexByte(host, '%'); i >= 0 {
		return host[:i]
	}
	return host
}

func validHostName(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

func validMasterName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

func parseDB(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > maxDB || s[0] == '+' || len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("bad database number; want /N with N a whole number from 0")
	}
	return n, nil
}

// Redact returns rawURL with its password replaced by "xxxxx", for logs and
// errors: redis://user:secret@h:6379/0 becomes redis://user:xxxxx@h:6379/0.
//
// It errs on the side of hiding: everything from the first ':' after the
// scheme to the last '@' anywhere is treated as the password, so a URL whose
// password was not percent-encoded (and so may hold '/' or '@') is still
// masked, at the cost of masking some of the host in odd URLs. Strings that
// hold no '@' have no user information and are returned unchanged.
func Redact(rawURL string) string {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		scheme, rest = "", rawURL
	} else {
		scheme += "://"
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return rawURL
	}
	colon := strings.IndexByte(rest[:at], ':')
	if colon < 0 || colon+1 == at {
		return rawURL
	}
	return scheme + rest[:colon+1] + "xxxxx" + rest[at:]
}
