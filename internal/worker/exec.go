package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultKillGrace is how long a killed run gets between SIGTERM and
// SIGKILL.
const DefaultKillGrace = 5 * time.Second

// Exec runs a program per job, without a shell: Argv is the program and
// its arguments, as SplitCommand makes them from a command line.
//
// The run's stdin is the item's JSON (a batch's: a JSON array of the
// items); its environment adds SLUICE_QUEUE, and SLUICE_DELIVERY_ID and
// SLUICE_ATTEMPT for one item (SLUICE_BATCH_SIZE for a batch). With
// Placeholders, {item}, {id}, {attempt} and {queue} in the arguments are
// replaced by the item's JSON, its delivery id, attempt and queue; each
// argument stays one argument whatever the item holds.
//
// The program runs in a process group of its own: a killed run (timeout,
// shutdown) gets SIGTERM on the whole group, then SIGKILL after
// KillGrace, so its children go with it.
type Exec struct {
	Argv         []string
	Placeholders bool
	// Env is the environment the metadata is added to (nil: none but
	// the metadata; pass os.Environ() to inherit).
	Env []string
	// Stdout and Stderr receive the program's output (nil: discarded).
	// The end of its stderr is also the reason of a failed run's nack.
	Stdout, Stderr io.Writer
	KillGrace      time.Duration
}

// placeholders are what Exec.Placeholders replaces.
var placeholders = []string{"{item}", "{id}", "{attempt}", "{queue}"}

// ErrCommand is a command line SplitCommand or CheckPlaceholders refuses.
var ErrCommand = errors.New("invalid command")

// CheckPlaceholders refuses what placeholders cannot be used for: a
// batch (use stdin), and code given to an interpreter with -c or -e,
// where an item would be run as code (pass it as an argument instead:
// sh -c 'echo "$1"' sh {item}).
func CheckPlaceholders(argv []string, batch bool) error {
	has := func(s string) bool {
		for _, p := range placeholders {
			if strings.Contains(s, p) {
				return true
			}
		}
		return false
	}
	prev := ""
	for i, a := range argv {
		if !has(a) {
			prev = a
			continue
		}
		if batch && has(strings.ReplaceAll(a, "{queue}", "")) {
			return fmt.Errorf("%w: placeholder in %q: a batch goes to stdin as a JSON array; only {queue} is replaced", ErrCommand, a)
		}
		if i == 0 {
			return fmt.Errorf("%w: the program %q is a placeholder", ErrCommand, a)
		}
		if codeFlag(prev) {
			return fmt.Errorf("%w: placeholder in the code after %s (%q): an item would run as code; pass it as an argument, as in sh -c 'echo \"$1\"' sh {item}", ErrCommand, prev, a)
		}
		prev = a
	}
	return nil
}

// codeFlag reports whether the argument after flag is code for an
// interpreter: -c (sh, bash, python), -e (node, perl, ruby), in a cluster
// of single-letter flags too (sh -ec, bash -lc), or --command, --eval.
func codeFlag(flag string) bool {
	if flag == "--command" || flag == "--eval" {
		return true
	}
	return len(flag) > 1 && flag[0] == '-' && flag[1] != '-' && strings.ContainsAny(flag[1:], "ce")
}

// Run runs the program for job and waits for it; a non-zero exit is an
// error whose text is the exit status and the end of its stderr.
func (e *Exec) Run(ctx context.Context, job Job) error {
	stdin, env := e.input(job)
	argv := e.Argv
	if e.Placeholders {
		argv = e.substitute(job)
	}
	cmd := exec.Command(argv[0], argv[1:]...) //nolint:gosec,noctx // running the user's command is the point; ctx is watched below, to kill the process group rather than the process
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout = e.Stdout
	tail := &tailBuffer{max: MaxReason}
	if e.Stderr != nil {
		cmd.Stderr = io.MultiWriter(tail, e.Stderr)
	} else {
		cmd.Stderr = tail
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	grace := e.KillGrace
	if grace <= 0 {
		grace = DefaultKillGrace
	}
	// A child that keeps the output pipes open after the program exits
	// (a daemon it started) must not keep the run going.
	cmd.WaitDelay = grace
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", filepath.Base(argv[0]), err)
	}
	pgid := cmd.Process.Pid
	exited := make(chan struct{})
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		select {
		case <-exited:
			return
		case <-ctx.Done():
		}
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-exited:
		case <-t.C:
		}
		// Whatever of the group outlived SIGTERM (the program exited but
		// a child ignored it) goes now.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}()
	err := cmd.Wait()
	close(exited)
	<-killed
	if err == nil {
		return nil
	}
	what := err.Error()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		what = ee.ProcessState.String() // "exit status 3", "signal: killed"
	}
	if t := strings.TrimSpace(tail.String()); t != "" {
		return fmt.Errorf("%s: %s", what, t)
	}
	return errors.New(what)
}

// input is the run's stdin and environment.
func (e *Exec) input(job Job) ([]byte, []string) {
	env := append(append([]string(nil), e.Env...), "SLUICE_QUEUE="+job.Queue)
	if job.Batch {
		env = append(env, "SLUICE_BATCH_SIZE="+strconv.Itoa(len(job.Deliveries)))
		return batchBody(job), env
	}
	d := job.Deliveries[0]
	env = append(env, "SLUICE_DELIVERY_ID="+d.ID, "SLUICE_ATTEMPT="+strconv.Itoa(d.Attempt))
	return d.Item, env
}

func (e *Exec) substitute(job Job) []string {
	pairs := []string{"{queue}", job.Queue}
	if !job.Batch {
		d := job.Deliveries[0]
		pairs = append(pairs, "{item}", string(d.Item), "{id}", d.ID, "{attempt}", strconv.Itoa(d.Attempt))
	}
	r := strings.NewReplacer(pairs...)
	out := make([]string, len(e.Argv))
	for i, a := range e.Argv {
		out[i] = r.Replace(a)
	}
	return out
}

// batchBody is a batch's items as one JSON array.
func batchBody(job Job) []byte {
	items := make([]json.RawMessage, len(job.Deliveries))
	for i, d := range job.Deliveries {
		items[i] = d.Item
	}
	b, _ := json.Marshal(items)
	return b
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// SplitCommand splits a command line into a program and its arguments
// the way a shell splits words, without a shell: 'single' and "double"
// quotes and backslashes quote, and nothing else is interpreted (no
// variables, globs, pipes or redirections). Unquoted | & ; < > ` and $(
// are refused rather than passed on as arguments: write
// sh -c '...' to use a shell.
func SplitCommand(s string) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool
	)
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case r == '\'':
			inWord = true
			j := i + 1
			for j < len(rs) && rs[j] != '\'' {
				j++
			}
			if j == len(rs) {
				return nil, fmt.Errorf("%w: unterminated ' in %q", ErrCommand, s)
			}
			cur.WriteString(string(rs[i+1 : j]))
			i = j
		case r == '"':
			inWord = true
			j := i + 1
			for ; j < len(rs) && rs[j] != '"'; j++ {
				if rs[j] == '\\' && j+1 < len(rs) && strings.ContainsRune("\"\\$`", rs[j+1]) {
					j++
				}
				cur.WriteRune(rs[j])
			}
			if j == len(rs) {
				return nil, fmt.Errorf("%w: unterminated \" in %q", ErrCommand, s)
			}
			i = j
		case r == '\\':
			inWord = true
			if i+1 < len(rs) {
				i++
				cur.WriteRune(rs[i])
			}
		case strings.ContainsRune("|&;<>`", r) || r == '$' && i+1 < len(rs) && rs[i+1] == '(':
			return nil, fmt.Errorf("%w: %q has an unquoted %q, which needs a shell; the command runs without one (write sh -c '...' for pipes and redirections)", ErrCommand, s, r)
		default:
			inWord = true
			cur.WriteRune(r)
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("%w: empty command", ErrCommand)
	}
	return words, nil
}
