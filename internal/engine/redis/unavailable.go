package redis

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice/internal/engine"
)

// unavailableReplies are the error replies of a server that cannot serve
// now but may soon: still loading its data set, a replica or a primary
// being demoted (failover), a cluster missing slots or a quorum, a script
// or a module holding the server, too few replicas for a write, a
// persistence failure or the memory limit.
var unavailableReplies = []string{
	"LOADING", "READONLY", "CLUSTERDOWN", "MASTERDOWN", "TRYAGAIN",
	"BUSY", "NOREPLICAS", "MISCONF", "OOM",
}

// unavailable reports whether err means the engine could not serve the
// call for reasons of its own (the connection, the server's state) rather
// than because of the call: the failures a caller may retry later.
func unavailable(err error) bool {
	if err == nil {
		return false
	}
	var ackErr *ReplicaAckError
	if errors.As(err, &ackErr) {
		// The write was applied: retrying it would add it twice.
		return false
	}
	if rerr, ok := rueidis.IsRedisErr(err); ok {
		code, _, _ := strings.Cut(rerr.Error(), " ")
		for _, c := range unavailableReplies {
			if code == c {
				return true
			}
		}
		return false
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, rueidis.ErrClosing), errors.Is(err, rueidis.ErrNoAddr), errors.Is(err, rueidis.ErrNoSlot),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.As(err, &opErr), errors.As(err, &dnsErr):
		return true
	}
	return false
}

// unavailableError marks err with engine.ErrUnavailable and keeps err's
// chain; its text says "engine unavailable" before err's own.
type unavailableError struct{ err error }

func withUnavailable(err error) error { return unavailableError{err} }

func (e unavailableError) Error() string {
	return engine.ErrUnavailable.Error() + ": " + e.err.Error()
}

func (e unavailableError) Unwrap() []error { return []error{engine.ErrUnavailable, e.err} }
