package chaos

import (
	"strings"
	"testing"
)

func transcript(t *testing.T, text string) *Transcript {
	t.Helper()
	tr, err := ParseTranscript(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestParseTranscript(t *testing.T) {
	tr := transcript(t, "handled 1 1\nacked 1\nnacked 97 1\nerror dial tcp: refused\n"+
		"handled 2 2\nlost 2 lease gone\nhandled 3 1\nackerr 3 EOF\nhandled 4 1\n")
	if tr.Handled[1] != 1 || tr.Acked[1] != 1 || !tr.Lost[2] || !tr.Unconfirmed[3] {
		t.Errorf("events not recorded: %+v", tr)
	}
	if !tr.Dangling || !tr.Unconfirmed[4] {
		t.Errorf("a transcript ending after a handled line must be dangling with the job unconfirmed: %+v", tr)
	}
	if tr.Nacks != 1 || tr.Errors != 1 || tr.Retried != 1 || len(tr.Malformed) != 0 {
		t.Errorf("counts wrong: %+v", tr)
	}

	bad := transcript(t, "acked 5\nhandled x 1\nhandled 6 1\nhandled 7 1\nacked 7\n")
	if len(bad.Malformed) != 3 || !bad.Unconfirmed[6] {
		t.Errorf("out-of-order and unparsable lines must be reported: %+v", bad.Malformed)
	}
}

// ledger returns a clean run of jobs 0..199: poison jobs in the failed
// DLQ, 150..199 pushed to the overflow DLQ, the rest acked.
func ledger(t *testing.T) *Ledger {
	l := &Ledger{Total: 200, Accepted: map[int]bool{}, Uncertain: map[int]bool{}, Kills: 1, Consumers: 4}
	var out strings.Builder
	for id := range 200 {
		l.Accepted[id] = true
		switch {
		case id >= 150:
			l.Overflow = append(l.Overflow, id)
		case Poison(id):
			l.Failed = append(l.Failed, id)
		default:
			out.WriteString("handled " + itoa(id) + " 1\nacked " + itoa(id) + "\n")
		}
	}
	l.MovedToDLQ = int64(len(l.Overflow))
	l.Transcripts = []*Transcript{transcript(t, out.String())}
	return l
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

func TestCheckCleanRun(t *testing.T) {
	v := ledger(t).Check()
	if len(v.Problems) != 0 {
		t.Fatalf("clean run judged broken: %v", v.Problems)
	}
	if v.Acked != 148 || v.Overflow != 50 || v.Failed != 2 {
		t.Errorf("counts: %s", v)
	}
}

func TestCheckFindsFaults(t *testing.T) {
	cases := []struct {
		name  string
		fault func(l *Ledger)
		want  string
	}{
		{"lost", func(l *Ledger) { l.Overflow = l.Overflow[1:]; l.MovedToDLQ-- }, "job 150 was accepted and is lost"},
		{"two places", func(l *Ledger) { l.Overflow = append(l.Overflow, 5); l.MovedToDLQ++ }, "job 5 is in 2 places"},
		{"twice in a DLQ", func(l *Ledger) { l.Overflow = append(l.Overflow, 150); l.MovedToDLQ++ }, "job 150 is 2 times in the overflow DLQ"},
		{"acked twice", func(l *Ledger) { l.Transcripts = append(l.Transcripts, transcript(t, "handled 5 2\nacked 5\n")) }, "job 5 was acknowledged 2 times"},
		{"healthy dead-lettered", func(l *Ledger) {
			l.Transcripts[0] = transcript(t, strings.Replace(transcriptText(l), "handled 5 1\nacked 5\n", "", 1))
			l.Failed = append(l.Failed, 5)
		}, "healthy job 5 is in the failed DLQ"},
		{"poison missing", func(l *Ledger) { l.Failed = l.Failed[1:] }, "poison job 0 is neither"},
		{"phantom", func(l *Ledger) { delete(l.Accepted, 150) }, "job 150 appears but no add"},
		{"overflow count", func(l *Ledger) { l.MovedToDLQ++ }, "adds reported 51 items moved"},
		{"too many vanished acks", func(l *Ledger) {
			l.Transcripts[0] = transcript(t, strings.NewReplacer("acked 5\n", "", "acked 6\n", "").Replace(transcriptText(l)))
		}, "unconfirmed jobs are nowhere else"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := ledger(t)
			c.fault(l)
			v := l.Check()
			for _, p := range v.Problems {
				if strings.Contains(p, c.want) {
					return
				}
			}
			t.Errorf("want a problem containing %q, got %v", c.want, v.Problems)
		})
	}
}

// transcriptText rebuilds the clean run's consumer output.
func transcriptText(l *Ledger) string {
	var out strings.Builder
	for id := range l.Total {
		if l.Transcripts[0].Acked[id] > 0 {
			out.WriteString("handled " + itoa(id) + " 1\nacked " + itoa(id) + "\n")
		}
	}
	return out.String()
}

func TestCheckAllowsCrashEffects(t *testing.T) {
	l := ledger(t)
	// A consumer died after sending job 5's ack; job 6 was handled, its
	// consumer died before acking, and it was handled again elsewhere.
	text := transcriptText(l)
	cut5 := strings.Index(text, "acked 5\n")
	rest := strings.Replace(text[cut5+len("acked 5\n"):], "handled 6 1\nacked 6\n", "", 1)
	l.Transcripts = []*Transcript{
		transcript(t, text[:cut5]),
		transcript(t, "handled 6 1\n"),
		transcript(t, rest+"handled 6 2\nacked 6\n"),
	}
	l.Kills = 2
	v := l.Check()
	if len(v.Problems) != 0 {
		t.Fatalf("crash effects judged as faults: %v", v.Problems)
	}
	if v.Redelivered != 1 || v.AckedBeforeDeath != 1 || v.Retried != 1 {
		t.Errorf("counts: %s", v)
	}
}
