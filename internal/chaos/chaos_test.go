package chaos_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/chaos"
	"github.com/sluicehq/sluice/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const queueName = "chaos"

// config sizes one chaos run.
type config struct {
	jobs, maxSize        int
	producers, consumers int
	batch                int
	pace                 time.Duration // between one producer's batches
	lease                time.Duration
	maxKills             int // consumer SIGKILLs
	serverKills          int // service SIGKILLs (file engine only)
}

func newConfig() config {
	c := config{
		jobs: 20000, maxSize: 2000, producers: 4, consumers: 4, batch: 25,
		pace: 15 * time.Millisecond, lease: 2 * time.Second, maxKills: 8,
	}
	if testing.Short() {
		c.jobs, c.maxSize, c.maxKills = 2000, 200, 4
	}
	return c
}

// maxDeliveries exceeds the deliveries crashes can burn: each consumer
// kill costs at most one delivery of one item, each service kill one per
// consumer. A healthy item can therefore never be dead-lettered, which
// makes "the failed DLQ holds exactly the poison items" exact, whatever
// the kill schedule.
func (c config) maxDeliveries() int { return c.maxKills + c.consumers*c.serverKills + 3 }

func (c config) consumerEnv() []string {
	return envs(envQueue, queueName, envMaxSize, strconv.Itoa(c.maxSize),
		envLease, c.lease.String(), envMaxDeliv, strconv.Itoa(c.maxDeliveries()))
}

// target is how the test process reaches the engine under test.
type target struct {
	add         func(ctx context.Context, jobs []chaos.Job) ([]sluice.AddResult, error)
	pressure    func(ctx context.Context) (sluice.Pressure, error)
	consumerEnv []string
	// killServer SIGKILLs the service and starts it again (nil: no service).
	killServer func()
	// ready reports whether the engine answers again after a failed add;
	// nil means retry at the normal pace.
	ready func(ctx context.Context) bool
}

// seed returns SLUICE_CHAOS_SEED, or a fresh seed; it is logged so a run's
// kill schedule can be replayed.
func seed(t *testing.T) uint64 {
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("SLUICE_CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("SLUICE_CHAOS_SEED: %v", err)
		}
		s = n
	}
	t.Logf("seed %d (set SLUICE_CHAOS_SEED to replay the kill schedule)", s)
	return s
}

func TestChaosRedis(t *testing.T) {
	rc := redistest.Client(t)
	prefix := redistest.Prefix(t)
	redistest.Cleanup(t, rc, prefix)
	cfg := newConfig()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	client, err := sluice.Open(ctx, redistest.URL(), &sluice.Config{KeyPrefix: prefix})
	if err != nil {
		redistest.Unavailable(t, err)
	}
	defer client.Close()
	q := client.QueueWith(queueName, sluice.QueueSettings{MaxSize: int64(cfg.maxSize), Policy: sluice.PolicyDLQ})
	tg := target{
		add: func(ctx context.Context, jobs []chaos.Job) ([]sluice.AddResult, error) {
			items := make([]any, len(jobs))
			for i, j := range jobs {
				items[i] = j
			}
			return q.AddBatch(ctx, items, nil)
		},
		pressure: q.Pressure,
		consumerEnv: append(cfg.consumerEnv(),
			envs(envEndpoint, "redis", envURL, redistest.URL(), envPrefix, prefix)...),
	}
	r := newRun(t, cfg, tg)
	led := r.run(ctx)
	r.gather(ctx, q, led)
	r.judge(led)
}

// TestChaosFile runs the service as `sluice serve --data-dir` runs by
// default (fsync everysec): a SIGKILL of the service must lose no job it
// answered 200, as under always.
func TestChaosFile(t *testing.T) { chaosFile(t, "") }

// TestChaosFileAlways is TestChaosFile under `--fsync always`.
func TestChaosFileAlways(t *testing.T) { chaosFile(t, "always") }

func chaosFile(t *testing.T, fsync string) {
	cfg := newConfig()
	cfg.serverKills = 1
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	dir := t.TempDir()
	srvEnv := envs(envDataDir, dir, envMaxSize, strconv.Itoa(cfg.maxSize), envFsync, fsync)
	srv, addr := startServer(t, srvEnv, "")
	t.Cleanup(func() {
		if !srv.exited() {
			srv.kill(t)
		}
	})
	base := "http://" + addr
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	hq := &chaos.HTTPQueue{
		Base: base, Queue: queueName, Lease: cfg.lease, MaxDeliveries: cfg.maxDeliveries(),
		Client: &http.Client{Transport: transport, Timeout: 30 * time.Second},
	}
	tg := target{
		add:         hq.AddBatch,
		pressure:    hq.Pressure,
		consumerEnv: append(cfg.consumerEnv(), envs(envEndpoint, "http", envURL, base)...),
		ready:       hq.Live,
		killServer: func() {
			srv.kill(t)
			// The same address: consumers were told it at start.
			srv, _ = startServer(t, srvEnv, addr)
		},
	}
	r := newRun(t, cfg, tg)
	led := r.run(ctx)
	srv.stop(t)
	transport.CloseIdleConnections()

	// The service is down and its directory lock released: read the final
	// state through the library, straight from the data directory.
	client, err := sluice.Open(ctx, "file://"+dir, nil)
	if err != nil {
		t.Fatalf("reopen %s: %v", dir, err)
	}
	defer client.Close()
	q := client.QueueWith(queueName, sluice.QueueSettings{MaxSize: int64(cfg.maxSize), Policy: sluice.PolicyDLQ})
	r.gather(ctx, q, led)
	r.judge(led)
}

// run is one chaos run: producers in this process, consumers in child
// processes that get killed and restarted.
type run struct {
	t           *testing.T
	cfg         config
	tg          target
	rng         *rand.Rand
	slots       []*proc
	started     int
	transcripts []*chaos.Transcript
	kills       int
	serverKills int
	// produced counts the jobs whose add was attempted; the kill schedule
	// follows it, so every planned kill lands while jobs flow however fast
	// the machine produces them.
	produced atomic.Int64
}

func newRun(t *testing.T, cfg config, tg target) *run {
	s := seed(t)
	r := &run{t: t, cfg: cfg, tg: tg, rng: rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15))}
	t.Cleanup(func() {
		for _, p := range r.slots {
			if p != nil && !p.exited() {
				p.kill(t)
			}
		}
	})
	return r
}

func (r *run) startConsumer(i int) {
	r.started++
	r.slots[i] = startConsumer(r.t, fmt.Sprintf("consumer %d (run %d)", i, r.started), r.tg.consumerEnv)
}

// record parses an ended consumer's transcript.
func (r *run) record(p *proc) {
	tr, err := chaos.ParseTranscript(&p.stdout)
	if err != nil {
		r.t.Fatalf("%s: %v", p.name, err)
	}
	if tr.Dangling && !p.killed {
		r.t.Errorf("%s stopped between handling a job and settling it", p.name)
	}
	r.transcripts = append(r.transcripts, tr)
}

// run produces every job, kills consumers on a random schedule, and
// returns once every consumer is stopped and the queue is settled: empty,
// nothing in flight, checked with no process touching it.
func (r *run) run(ctx context.Context) *chaos.Ledger {
	r.slots = make([]*proc, r.cfg.consumers)
	for i := range r.slots {
		r.startConsumer(i)
	}
	led := &chaos.Ledger{Total: r.cfg.jobs, Accepted: map[int]bool{}, Uncertain: map[int]bool{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.produce(ctx, led)
	}()
	r.orchestrate(ctx, done)
	<-done
	led.Kills, led.ServerKills, led.Consumers = r.kills, r.serverKills, r.cfg.consumers
	return led
}

func (r *run) produce(ctx context.Context, led *chaos.Ledger) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	per := (r.cfg.jobs + r.cfg.producers - 1) / r.cfg.producers
	for p := range r.cfg.producers {
		wg.Go(func() {
			for lo := p * per; lo < min((p+1)*per, r.cfg.jobs) && ctx.Err() == nil; lo += r.cfg.batch {
				jobs := make([]chaos.Job, 0, r.cfg.batch)
				for id := lo; id < min(lo+r.cfg.batch, (p+1)*per, r.cfg.jobs); id++ {
					jobs = append(jobs, chaos.Job{ID: id})
				}
				res, err := r.tg.add(ctx, jobs)
				r.produced.Add(int64(len(jobs)))
				mu.Lock()
				for i, j := range jobs {
					switch {
					case err != nil:
						led.Uncertain[j.ID] = true
					case res[i].Success:
						led.Accepted[j.ID] = true
						if led.MovedToDLQ >= 0 {
							led.MovedToDLQ += res[i].MovedToDLQCount
						}
					default:
						r.t.Errorf("add of job %d refused under the dlq policy: %+v", j.ID, res[i])
					}
				}
				if err != nil {
					// Whether the batch landed is unknown, and so is how
					// much it pushed to the overflow DLQ.
					led.MovedToDLQ = -1
				}
				mu.Unlock()
				if err != nil {
					r.t.Logf("add of jobs %d..%d failed, outcome unknown: %v", jobs[0].ID, jobs[len(jobs)-1].ID, err)
					// Wait for the service to come back rather than turn
					// every batch of the outage into an unknown.
					for r.tg.ready != nil && ctx.Err() == nil && !r.tg.ready(ctx) {
						time.Sleep(20 * time.Millisecond)
					}
				}
				// Pacing only: spreads the adds over the kill schedule.
				time.Sleep(r.cfg.pace)
			}
		})
	}
	wg.Wait()
}

// schedule draws the points of the production, in jobs attempted, at
// which each consumer kill and the service kill are due: random, in
// increasing order for the consumers, and between a fifth and four fifths
// of the jobs for the service, so that it dies under load.
func (r *run) schedule() (consumers []int64, server int64) {
	n := int64(r.cfg.jobs)
	for range r.cfg.maxKills {
		consumers = append(consumers, n/20+r.rng.Int64N(n*17/20))
	}
	slices.Sort(consumers)
	return consumers, n/5 + r.rng.Int64N(n*3/5)
}

// orchestrate kills and restarts consumers as the schedule says, and the
// service once, and after the producers finish and every kill happened
// waits for the queue to settle. A kill whose point the producers passed
// meanwhile happens at once: none is ever skipped.
func (r *run) orchestrate(ctx context.Context, producersDone <-chan struct{}) {
	consumerAt, serverAt := r.schedule()
	for {
		if ctx.Err() != nil {
			p, err := r.tg.pressure(context.Background())
			r.t.Fatalf("the queue did not settle in time: %+v %v", p, err)
		}
		for i, p := range r.slots {
			if p.exited() {
				r.t.Errorf("%s exited on its own: %v; stderr:\n%s", p.name, p.err, tail(p.stderr.String()))
				r.record(p)
				r.startConsumer(i)
			}
		}
		produced := r.produced.Load()
		if r.kills < r.cfg.maxKills && produced >= consumerAt[r.kills] {
			i := r.rng.IntN(len(r.slots))
			r.slots[i].kill(r.t)
			r.record(r.slots[i])
			r.startConsumer(i)
			r.kills++
		}
		if r.tg.killServer != nil && r.serverKills < r.cfg.serverKills && produced >= serverAt {
			r.tg.killServer()
			r.serverKills++
		}
		select {
		case <-producersDone:
			if r.kills >= r.cfg.maxKills && (r.tg.killServer == nil || r.serverKills >= r.cfg.serverKills) && r.settled(ctx) {
				return
			}
		default:
		}
		// Pacing of the kill schedule and of the polls; no result depends
		// on it.
		time.Sleep(50 * time.Millisecond)
	}
}

func idle(p sluice.Pressure) bool { return p.CurrentLength == 0 && p.InFlight == 0 }

// settled reports whether the queue is empty with nothing in flight. The
// two counts are read apart, so an idle reading while consumers run is
// only a hint: the consumers are then stopped (each finishes its job and
// holds no lease) and the reading repeated with nothing moving. If work
// remains (a killed consumer's lease not yet reclaimed), they restart.
func (r *run) settled(ctx context.Context) bool {
	if p, err := r.tg.pressure(ctx); err != nil || !idle(p) {
		return false
	}
	for _, p := range r.slots {
		p.stop(r.t)
		r.record(p)
	}
	p, err := r.tg.pressure(ctx)
	if err == nil && idle(p) {
		return true
	}
	for i := range r.slots {
		r.startConsumer(i)
	}
	return false
}

// gather reads both DLQs whole into the ledger.
func (r *run) gather(ctx context.Context, q *sluice.Queue, led *chaos.Ledger) {
	p, err := q.Pressure(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	if !idle(p) {
		r.t.Errorf("queue not settled at the end: %+v", p)
	}
	for _, k := range []struct {
		kind sluice.DLQKind
		ids  *[]int
	}{{sluice.DLQOverflow, &led.Overflow}, {sluice.DLQFailed, &led.Failed}} {
		for start := int64(0); ; {
			entries, total, err := q.DLQ(k.kind).List(ctx, start, sluice.MaxPeek)
			if err != nil {
				r.t.Fatal(err)
			}
			for _, e := range entries {
				var job chaos.Job
				if e.Malformed || e.Item == nil || e.Item.Decode(&job) != nil {
					led.Undecodable = append(led.Undecodable, e.Raw)
					continue
				}
				*k.ids = append(*k.ids, job.ID)
			}
			start += int64(len(entries))
			if len(entries) == 0 || start >= total {
				break
			}
		}
	}
}

func (r *run) judge(led *chaos.Ledger) {
	led.Transcripts = r.transcripts
	v := led.Check()
	r.t.Logf("%d jobs, queue bound %d, %d consumer processes run, %d consumer kills, %d service kills, max deliveries %d",
		r.cfg.jobs, r.cfg.maxSize, r.started, r.kills, r.serverKills, r.cfg.maxDeliveries())
	r.t.Logf("%s", v)
	if v.ExtraHandled > 0 {
		r.t.Logf("at-least-once: %d jobs were handled more than once (%d extra handlings)", v.Redelivered, v.ExtraHandled)
	}
	for _, p := range v.Problems {
		r.t.Error(p)
	}
	// A run whose kills did not happen proves nothing about crashes.
	if r.kills < r.cfg.maxKills {
		r.t.Errorf("%d consumer kills happened, %d were planned", r.kills, r.cfg.maxKills)
	}
	if r.tg.killServer != nil && r.serverKills < r.cfg.serverKills {
		r.t.Errorf("%d service kills happened, %d were planned", r.serverKills, r.cfg.serverKills)
	}
	if v.Accepted+v.Uncertain != r.cfg.jobs {
		r.t.Errorf("%d jobs accepted and %d uncertain, want %d in all", v.Accepted, v.Uncertain, r.cfg.jobs)
	}
}
