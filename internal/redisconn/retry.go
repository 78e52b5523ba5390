package redisconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/redis/rueidis"
)

// Defaults of RetryPolicy, from the original service's retry rule:
// delay = min(1 s * 2^(attempt-1), 30 s) plus 0-25 % jitter, 3 attempts.
const (
	DefaultAttempts  = 3
	DefaultBaseDelay = time.Second
	DefaultMaxDelay  = 30 * time.Second
	// JitterFraction is the largest random extra added to a delay, as a
	// fraction of it.
	JitterFraction = 0.25
)

// RetryPolicy says how often and how patiently a failed connection is
// retried. The zero value is the default policy.
type RetryPolicy struct {
	// Attempts is the total number of tries, the first included.
	// Default: DefaultAttempts. 1 disables retrying.
	Attempts int
	// BaseDelay is the wait after the first failure; it doubles after each
	// further one. Default: DefaultBaseDelay.
	BaseDelay time.Duration
	// MaxDelay caps the doubled delay, before jitter. Default: DefaultMaxDelay.
	MaxDelay time.Duration
	// Sleep waits d or until ctx is done, returning ctx's error in that
	// case. Tests replace it to avoid real waits. Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter returns a number in [0, 1) that scales the random extra.
	// Default: math/rand/v2's Float64.
	Jitter func() float64
}

func (p RetryPolicy) validate() error {
	if p.Attempts < 0 || p.BaseDelay < 0 || p.MaxDelay < 0 {
		return fmt.Errorf("negative field in Retry (Attempts %d, BaseDelay %v, MaxDelay %v); use 0 for the defaults",
			p.Attempts, p.BaseDelay, p.MaxDelay)
	}
	return nil
}

// WithDefaults returns a copy of p with every zero field set to its default.
func (p RetryPolicy) WithDefaults() RetryPolicy {
	if p.Attempts == 0 {
		p.Attempts = DefaultAttempts
	}
	if p.BaseDelay == 0 {
		p.BaseDelay = DefaultBaseDelay
	}
	if p.MaxDelay == 0 {
		p.MaxDelay = DefaultMaxDelay
	}
	if p.Sleep == nil {
		p.Sleep = sleep
	}
	if p.Jitter == nil {
		p.Jitter = randFloat
	}
	return p
}

// Backoff returns the wait after failed attempt number attempt (1-based):
// min(BaseDelay * 2^(attempt-1), MaxDelay) plus jitter*25 % of that, where
// jitter is in [0, 1). Zero fields of p count as their defaults.
func (p RetryPolicy) Backoff(attempt int, jitter float64) time.Duration {
	p = p.WithDefaults()
	d := min(p.BaseDelay, p.MaxDelay)
	for i := 1; i < attempt && d < p.MaxDelay; i++ {
		d = min(2*d, p.MaxDelay)
	}
	jitter = max(0, min(jitter, 1))
	return d + time.Duration(float64(d)*JitterFraction*jitter)
}

func randFloat() float64 { return rand.Float64() }

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Retryable reports whether err is a connection failure or a timeout, the
// only failures worth another try. Error replies from the server (WRONGTYPE,
// authentication failures, LOADING, ...), certificate problems, unknown hosts
// and cancellation are not: trying again cannot fix them.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var (
		redisErr     *rueidis.RedisError
		verifyErr    *tls.CertificateVerificationError
		unknownCA    x509.UnknownAuthorityError
		hostnameErr  x509.HostnameError
		invalidCert  x509.CertificateInvalidError
		recordHdrErr tls.RecordHeaderError
		alertErr     tls.AlertError
		dnsErr       *net.DNSError
		opErr        *net.OpError
	)
	switch {
	case errors.As(err, &redisErr):
		return false
	case errors.As(err, &verifyErr), errors.As(err, &unknownCA), errors.As(err, &hostnameErr),
		errors.As(err, &invalidCert), errors.As(err, &recordHdrErr), errors.As(err, &alertErr):
		return false
	case errors.As(err, &dnsErr):
		return dnsErr.IsTimeout || dnsErr.IsTemporary
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		// A TLS alert from the server, such as "certificate required":
		// the server refused us on purpose.
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, rueidis.ErrNoAddr) || errors.Is(err, rueidis.ErrClosing) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}
