package main

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice"
)

// After a rejected add on a queue declared at 2, `queue pressure` reports
// max_size 2 and is_full (it reported 10000 and false).
func TestPressureOfDeclaredQueueAfterRejectedAdd(t *testing.T) {
	backends(t, func(t *testing.T, conn ...string) {
		cli(t, nil, "", args([]string{"queue", "declare", "q", "--max-size", "2", "--policy", "reject"}, conn)...).want(t, exitOK)
		add := []string{"queue", "add", "q", `{"n": 1}`, "--policy", "reject", "--max-size", "2"}
		cli(t, nil, "", args(add, conn)...).want(t, exitOK)
		cli(t, nil, "", args(add, conn)...).want(t, exitOK)
		cli(t, nil, "", args(add, conn)...).want(t, exitRejected)
		r := cli(t, nil, "", args([]string{"queue", "pressure", "q"}, conn)...).want(t, exitOK)
		p := decode[sluice.Pressure](t, r.stdout)
		if p.MaxSize != 2 || !p.IsFull || p.FillRatio != 1 {
			t.Fatalf("pressure %+v; want max_size 2, full", p)
		}
		// Without --max-size the add is held to the declared bound too.
		cli(t, nil, "", args([]string{"queue", "add", "q", "3"}, conn)...).want(t, exitRejected)
		// A looser bound is a mistake of the command line.
		r = cli(t, nil, "", args([]string{"queue", "add", "q", "3", "--max-size", "10"}, conn)...).want(t, exitUsage)
		if !strings.Contains(r.stderr, "declared max size 2") {
			t.Errorf("stderr %q", r.stderr)
		}
	})
}

// `dlq requeue` without --max-size fills a declared queue of 5 up to 5
// (it refilled it to 7, under the client's default bound).
func TestDLQRequeueRespectsDeclaredBound(t *testing.T) {
	backends(t, func(t *testing.T, conn ...string) {
		for i := range 7 {
			cli(t, nil, "", args([]string{"queue", "add", "q", strings.Repeat("1", i+1), "--max-size", "5", "--policy", "dlq"}, conn)...).want(t, exitOK)
		}
		cli(t, nil, "", args([]string{"queue", "declare", "q", "--max-size", "5"}, conn)...).want(t, exitOK)
		r := cli(t, nil, "", args([]string{"dlq", "requeue", "q"}, conn)...).want(t, exitOK)
		res := decode[sluice.RequeueResult](t, r.stdout)
		r = cli(t, nil, "", args([]string{"queue", "len", "q"}, conn)...).want(t, exitOK)
		if strings.TrimSpace(r.stdout) != "5" {
			t.Fatalf("length after requeue %s (requeue %+v); want 5", r.stdout, res)
		}
	})
}

func TestQueueDeclareInfoListPauseDelete(t *testing.T) {
	backends(t, func(t *testing.T, conn ...string) {
		r := cli(t, nil, "", args([]string{"queue", "declare", "jobs", "--max-size", "100", "--lease", "45s", "--max-deliveries", "2"}, conn)...).want(t, exitOK)
		for _, want := range []string{"SETTING VALUE SOURCE", "max size 100 declared", "lease 45s declared", "policy dlq default"} {
			if !hasRow(r.stdout, want) {
				t.Errorf("declare output lacks the row %q:\n%s", want, r.stdout)
			}
		}
		r = cli(t, nil, "", args([]string{"queue", "info", "jobs", "--json"}, conn)...).want(t, exitOK)
		info := decode[queueInfoOutput](t, r.stdout)
		if info.Declared.MaxSize != 100 || info.Declared.Lease != "45s" || info.Sources.MaxDeliveries != sluice.SourceDeclared || info.MaxSize != 100 {
			t.Fatalf("info %+v", info)
		}

		for _, q := range []string{"a", "b", "c"} {
			cli(t, nil, "", args([]string{"queue", "add", q, "1"}, conn)...).want(t, exitOK)
		}
		r = cli(t, nil, "", args([]string{"queue", "list", "--limit", "2", "--json"}, conn)...).want(t, exitOK)
		page := decode[queueListOutput](t, r.stdout)
		if len(page.Queues) != 2 || page.Queues[0].QueueName != "a" || page.NextCursor != "b" {
			t.Fatalf("first page %+v", page)
		}
		r = cli(t, nil, "", args([]string{"queue", "list", "--limit", "2", "--cursor", page.NextCursor, "--json"}, conn)...).want(t, exitOK)
		page = decode[queueListOutput](t, r.stdout)
		if len(page.Queues) != 2 || page.Queues[1].QueueName != "jobs" || !page.Queues[1].Declared || page.NextCursor != "" {
			t.Fatalf("second page %+v", page)
		}
		r = cli(t, nil, "", args([]string{"queue", "list"}, conn)...).want(t, exitOK)
		if !strings.HasPrefix(r.stdout, "QUEUE  LENGTH  MAX SIZE") || strings.Count(r.stdout, "\n") != 5 {
			t.Fatalf("table:\n%s", r.stdout)
		}

		cli(t, nil, "", args([]string{"queue", "pause", "a"}, conn)...).want(t, exitOK)
		cli(t, nil, "", args([]string{"queue", "get", "a", "--timeout", "0"}, conn)...).want(t, exitEmpty)
		cli(t, nil, "", args([]string{"queue", "resume", "a"}, conn)...).want(t, exitOK)
		cli(t, nil, "", args([]string{"queue", "get", "a", "--timeout", "0"}, conn)...).want(t, exitOK)

		r = cli(t, nil, "", args([]string{"queue", "delete", "jobs"}, conn)...).want(t, exitOK)
		if !strings.Contains(r.stdout, `"settings":true`) {
			t.Fatalf("delete: %s", r.stdout)
		}
		r = cli(t, nil, "", args([]string{"queue", "info", "jobs", "--json"}, conn)...).want(t, exitOK)
		if info := decode[queueInfoOutput](t, r.stdout); info.Declared != (settingsOutput{}) {
			t.Fatalf("settings outlived the delete: %+v", info)
		}
	})
}

func TestQueueDeclareBadInput(t *testing.T) {
	for _, bad := range [][]string{
		{"queue", "declare"},
		{"queue", "declare", "q", "--max-size", "x"},
		{"queue", "declare", "q", "--policy", "maybe"},
		{"queue", "declare", "q", "--threshold", "1.5"},
		{"queue", "declare", "q", "--lease", "1.5ms"},
		{"queue", "declare", "q", "--max-deliveries", "0"},
		{"queue", "declare", "bad name"},
		{"queue", "list", "--limit", "0"},
		{"queue", "delete"},
		{"queue", "pause", "q", "extra"},
	} {
		cli(t, nil, "", bad...).want(t, exitUsage)
	}
}

// hasRow reports whether a line of the table out holds the words of row,
// however the columns are padded.
func hasRow(out, row string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.Join(strings.Fields(line), " ") == row {
			return true
		}
	}
	return false
}
