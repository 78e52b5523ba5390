package bench

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice"
)

// idemLabel names the keyed add cases, measured beside the plain add.
const idemLabel = "add with Idempotency-Key"

// idemWindow is the window of the keyed add cases. It is short so that a
// run's records stay bounded: both engines expire records as they go, so
// each add also pays for one expiry, as it would at steady state under
// the default 24 h window.
const idemWindow = time.Second

// idemCounter is one worker's key counter, padded to its own cache line.
type idemCounter struct {
	n int64
	_ [56]byte
}

// keyedAdd adds v to q under a fresh key per call, as a producer that
// tags every add does (retries, which replay, are not measured). left,
// when set, bounds the items written, as in the embedded add case.
func keyedAdd(q *sluice.Queue, v any, workers int, left *atomic.Int64) op {
	seq := make([]idemCounter, workers)
	return func(ctx context.Context, w int) (int, error) {
		if left != nil {
			if _, ok := take(left, 1); !ok {
				return 0, errDrained
			}
		}
		c := &seq[w]
		c.n++
		key := "w" + strconv.Itoa(w) + "-" + strconv.FormatInt(c.n, 10)
		_, err := q.Add(ctx, v, &sluice.AddOptions{IdempotencyKey: key, IdempotencyWindow: idemWindow})
		return 1, err
	}
}
