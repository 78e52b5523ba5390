package chaos

import (
	"fmt"
	"slices"
	"strings"
)

// Ledger is everything known at the end of a run, gathered once no
// process touches the queue any more.
type Ledger struct {
	// Total jobs were offered, with ids 0..Total-1.
	Total int
	// Accepted holds the ids whose add reported success.
	Accepted map[int]bool
	// Uncertain holds ids whose add had an unknown outcome (the request
	// failed in transit): each may be anywhere, or nowhere.
	Uncertain map[int]bool
	// MovedToDLQ sums the adds' MovedToDLQCount; it must equal the overflow
	// DLQ's length. Negative when some add's result is unknown.
	MovedToDLQ int64
	// Overflow and Failed are the job ids found in the two DLQs, one per
	// entry, in DLQ order.
	Overflow, Failed []int
	// Undecodable holds DLQ entries that are not a chaos job.
	Undecodable []string
	// Transcripts are the parsed outputs of every consumer process run.
	Transcripts []*Transcript
	// Kills is how many consumer processes were SIGKILLed; ServerKills how
	// many times the service was, under Consumers consumers.
	Kills, ServerKills, Consumers int
}

// Verdict is the outcome of Ledger.Check. Problems lists every loss,
// duplication or misplacement; the run passed when it is empty.
type Verdict struct {
	Problems []string

	Accepted, Uncertain  int
	Acked, Overflow      int
	Failed, Unconfirmed  int
	Handled              int // handled lines in all
	Retried              int // handled lines of a second or later delivery
	UncertainLanded      int // uncertain adds found acked or dead-lettered
	Redelivered          int // jobs handled more than once
	ExtraHandled         int // handled lines beyond the first per job
	LostLeases           int // acks that found no lease
	AckedBeforeDeath     int // unconfirmed jobs found nowhere else: their ack landed
	Nacks, ReceiveErrors int
}

// String summarises the verdict for the test log.
func (v Verdict) String() string {
	return fmt.Sprintf("accepted=%d uncertain=%d acked=%d overflow_dlq=%d failed_dlq=%d "+
		"handled_lines=%d retried_deliveries=%d uncertain_landed=%d redelivered_jobs=%d extra_handled=%d unconfirmed=%d acked_before_death=%d "+
		"lost_leases=%d nacks=%d receive_errors=%d",
		v.Accepted, v.Uncertain, v.Acked, v.Overflow, v.Failed,
		v.Handled, v.Retried, v.UncertainLanded, v.Redelivered, v.ExtraHandled, v.Unconfirmed, v.AckedBeforeDeath,
		v.LostLeases, v.Nacks, v.ReceiveErrors)
}

// maxProblems keeps a badly broken run's report readable.
const maxProblems = 40

// Check places every job. An accepted job must be acked, in the overflow
// DLQ or in the failed DLQ, exactly once and in exactly one of them, or
// be an unconfirmed handling whose ack may have landed before its
// consumer died. No healthy job may be dead-lettered and every poison job
// that was not pushed out by overflow must be: the runs use more
// deliveries per item than there are kills, so crashes alone can never
// exhaust a healthy job's deliveries.
func (l *Ledger) Check() Verdict {
	var v Verdict
	problem := func(format string, args ...any) {
		if len(v.Problems) < maxProblems {
			v.Problems = append(v.Problems, fmt.Sprintf(format, args...))
		} else if len(v.Problems) == maxProblems {
			v.Problems = append(v.Problems, "... more problems not listed")
		}
	}

	handled := map[int]int{}
	acked := map[int]int{}
	unconfirmed := map[int]bool{}
	for i, tr := range l.Transcripts {
		for id, n := range tr.Handled {
			handled[id] += n
		}
		for id, n := range tr.Acked {
			acked[id] += n
		}
		for id := range tr.Unconfirmed {
			unconfirmed[id] = true
		}
		v.LostLeases += len(tr.Lost)
		v.Retried += tr.Retried
		v.Nacks += tr.Nacks
		v.ReceiveErrors += tr.Errors
		for _, m := range tr.Malformed {
			problem("consumer run %d printed an unexpected line: %q", i, m)
		}
	}
	overflow := l.count(l.Overflow, "overflow", problem)
	failed := l.count(l.Failed, "failed", problem)
	for _, s := range l.Undecodable {
		problem("a DLQ entry is not a chaos job: %.120s", s)
	}

	known := func(id int) bool { return l.Accepted[id] || l.Uncertain[id] }
	for _, set := range []map[int]int{handled, acked, overflow, failed} {
		for id := range set {
			if !known(id) {
				problem("job %d appears but no add of it was attempted or succeeded", id)
			}
		}
	}

	for id := range l.Total {
		places := placesOf(id, acked, overflow, failed)
		if len(places) > 1 {
			problem("job %d is in %d places: %s", id, len(places), strings.Join(places, ", "))
		}
		if acked[id] > 1 {
			problem("job %d was acknowledged %d times: it was stored twice", id, acked[id])
		}
		if l.Accepted[id] && len(places) == 0 && !unconfirmed[id] {
			problem("job %d was accepted and is lost: not acked, not in either DLQ", id)
		}
		if len(places) == 0 && unconfirmed[id] {
			v.AckedBeforeDeath++
		}
		if l.Uncertain[id] && (len(places) > 0 || unconfirmed[id]) {
			v.UncertainLanded++
		}
		if failed[id] > 0 && !Poison(id) {
			problem("healthy job %d is in the failed DLQ", id)
		}
		if Poison(id) && l.Accepted[id] && overflow[id] == 0 && failed[id] == 0 {
			problem("poison job %d is neither in the failed DLQ nor pushed to the overflow DLQ", id)
		}
		if acked[id] > 0 && Poison(id) {
			problem("poison job %d was acknowledged", id)
		}
		if handled[id] > 1 {
			v.Redelivered++
			v.ExtraHandled += handled[id] - 1
		}
	}
	if l.MovedToDLQ >= 0 && int64(len(l.Overflow)) != l.MovedToDLQ {
		problem("adds reported %d items moved to the overflow DLQ, it holds %d", l.MovedToDLQ, len(l.Overflow))
	}
	// Each SIGKILL (of a consumer, or of the service under its consumers)
	// can leave at most one acknowledged-but-unprinted job per consumer.
	ackErrors := 0
	for _, tr := range l.Transcripts {
		ackErrors += tr.AckErrors
	}
	if budget := l.Kills + l.Consumers*l.ServerKills + ackErrors; v.AckedBeforeDeath > budget {
		problem("%d unconfirmed jobs are nowhere else, more than the %d crashes and failed acks can explain", v.AckedBeforeDeath, budget)
	}

	v.Accepted, v.Uncertain = len(l.Accepted), len(l.Uncertain)
	v.Acked, v.Overflow, v.Failed = len(acked), len(l.Overflow), len(l.Failed)
	v.Unconfirmed = len(unconfirmed)
	for _, n := range handled {
		v.Handled += n
	}
	return v
}

// count tallies a DLQ's ids, reporting any job it holds twice.
func (l *Ledger) count(ids []int, kind string, problem func(string, ...any)) map[int]int {
	m := make(map[int]int, len(ids))
	for _, id := range ids {
		m[id]++
	}
	dups := []int{}
	for id, n := range m {
		if n > 1 {
			dups = append(dups, id)
		}
	}
	slices.Sort(dups)
	for _, id := range dups {
		problem("job %d is %d times in the %s DLQ", id, m[id], kind)
	}
	return m
}

func placesOf(id int, acked, overflow, failed map[int]int) []string {
	var p []string
	if acked[id] > 0 {
		p = append(p, "acked")
	}
	if overflow[id] > 0 {
		p = append(p, "overflow DLQ")
	}
	if failed[id] > 0 {
		p = append(p, "failed DLQ")
	}
	return p
}
