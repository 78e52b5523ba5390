package memory

import (
	"context"
	"fmt"
)

// QueueAckBatch settles several deliveries under one lock of the queue
// and logs them as one change.
func (e *Engine) QueueAckBatch(ctx context.Context, queue string, ids []string) (_ []bool, err error) {
	if err := e.checkOpen("queue ack batch"); err != nil {
		return nil, err
	}
	acked := make([]bool, len(ids))
	if len(ids) == 0 {
		return nil, nil
	}
	t, err := e.begin("queue ack batch")
	if err != nil {
		return nil, err
	}
	defer t.end(&err)
	o := e.lock1(e.listKey(queue), false)
	if o == nil {
		return acked, nil
	}
	defer o.mu.Unlock()
	for i, id := range ids {
		if l := leased(o, id); l != nil {
			t.leaseDel(o, l)
			acked[i] = true
		}
	}
	if err := t.commit(queue); err != nil {
		return nil, fmt.Errorf("queue ack batch: %w", err)
	}
	return acked, nil
}
