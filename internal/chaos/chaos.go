// Package chaos checks Sluice's delivery guarantee under crashes: producers
// fill a bounded queue with the dlq policy while consumer processes are
// killed with SIGKILL at random moments, and afterwards every item an add
// accepted must be in exactly one place: acknowledged, in the overflow DLQ
// or in the failed DLQ.
//
// The package holds what the test's processes share: the job payload, the
// consumer loop and the line protocol it prints, the two ways a consumer
// reaches a queue (a sluice.Client, or the HTTP service), and the ledger
// that turns the consumers' transcripts and the DLQs' contents into a
// verdict. The test itself (chaos_test.go) starts and kills the processes.
package chaos

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Job is the payload of every chaos item.
type Job struct {
	ID int `json:"id"`
}

// PoisonModulus selects the jobs whose handler always fails.
const PoisonModulus = 97

// Poison reports whether the handler fails on purpose for job id, so that
// the item uses up its deliveries and lands in the failed DLQ.
func Poison(id int) bool { return id%PoisonModulus == 0 }

// The consumer's output is one event per line, written unbuffered so that
// whatever a SIGKILLed consumer printed before dying reaches the parent.
// A handled line is always written before the ack is sent; one of the
// settle lines follows it unless the process died in between.
const (
	evHandled = "handled" // handled <job> <attempt>: handler done, ack not yet sent
	evAcked   = "acked"   // acked <job>: the ack succeeded
	evLost    = "lost"    // lost <job> <why>: the ack found no lease (expired, item redelivered)
	evAckErr  = "ackerr"  // ackerr <job> <why>: the ack's outcome is unknown
	evNacked  = "nacked"  // nacked <job> <attempt>: poison job nacked
	evNackErr = "nackerr" // nackerr <job> <why>: the nack failed; the lease will expire
	evError   = "error"   // error <why>: a receive failed
)

// Transcript is what one consumer process printed, parsed.
type Transcript struct {
	// Handled counts handled lines per job (a job handled twice was
	// delivered twice: at-least-once).
	Handled map[int]int
	// Retried counts handled lines of a second or later delivery: the job
	// came back after a crash or an expired lease.
	Retried int
	// Acked counts successful acks per job.
	Acked map[int]int
	// Lost holds jobs whose ack found no lease.
	Lost map[int]bool
	// Unconfirmed holds jobs handled whose ack outcome is unknown: the ack
	// failed in transit, or the process died before printing its outcome.
	Unconfirmed map[int]bool
	// Nacks counts nack lines; AckErrors, NackErrors and Errors count
	// failures.
	Nacks, AckErrors, NackErrors, Errors int
	// Dangling is true when the transcript ends between a handled line and
	// its outcome; that is only legitimate for a killed process.
	Dangling bool
	// Malformed holds lines that do not parse.
	Malformed []string
}

// ParseTranscript reads a consumer's output.
func ParseTranscript(r io.Reader) (*Transcript, error) {
	tr := &Transcript{Handled: map[int]int{}, Acked: map[int]int{}, Lost: map[int]bool{}, Unconfirmed: map[int]bool{}}
	pending := -1
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if f[0] == evError {
			tr.Errors++
			continue
		}
		if len(f) < 2 {
			tr.Malformed = append(tr.Malformed, line)
			continue
		}
		id, err := strconv.Atoi(f[1])
		if err != nil {
			tr.Malformed = append(tr.Malformed, line)
			continue
		}
		settles := f[0] == evAcked || f[0] == evLost || f[0] == evAckErr
		switch {
		case f[0] == evHandled:
			if pending >= 0 {
				tr.Malformed = append(tr.Malformed, fmt.Sprintf("%s (job %d had no outcome)", line, pending))
				tr.Unconfirmed[pending] = true
			}
			tr.Handled[id]++
			if len(f) > 2 && f[2] != "1" {
				tr.Retried++
			}
			pending = id
		case settles && id != pending:
			tr.Malformed = append(tr.Malformed, fmt.Sprintf("%s (expected an outcome for job %d)", line, pending))
		case f[0] == evAcked:
			tr.Acked[id]++
			pending = -1
		case f[0] == evLost:
			tr.Lost[id] = true
			pending = -1
		case f[0] == evAckErr:
			tr.Unconfirmed[id] = true
			tr.AckErrors++
			pending = -1
		case f[0] == evNacked:
			tr.Nacks++
		case f[0] == evNackErr:
			tr.NackErrors++
		default:
			tr.Malformed = append(tr.Malformed, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("chaos: read transcript: %w", err)
	}
	if pending >= 0 {
		tr.Dangling = true
		tr.Unconfirmed[pending] = true
	}
	return tr, nil
}
