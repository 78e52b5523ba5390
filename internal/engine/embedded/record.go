package embedded

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/internal/engine"
)

// Every change to stored state goes through the primitives of tx, which
// apply it and, when the engine is durable, encode it into the record of
// the call. Replay decodes records and calls the same primitives, so a
// replayed log rebuilds exactly the state the live calls built.
//
// A record is one call's changes, applied atomically on replay (the log
// frames and checksums whole records): a flag byte, then a sequence of
// operations, each an opcode byte followed by its fields. The flag is
// partLast, or partMore for all but the last part of a record too large
// for one log record (see store.append); parts are concatenated before
// decoding, so a split may fall anywhere. Strings are a uvarint length and the
// bytes; integers are uvarints, times signed varints of unix nanoseconds.
const (
	opPushBack    byte = 1  // key, item
	opPushFront   byte = 2  // key, item
	opPopFront    byte = 3  // key, count
	opClearList   byte = 4  // key
	opSetStr      byte = 5  // key, value, expireAt
	opDelStr      byte = 6  // key
	opExpire      byte = 7  // key, expireAt
	opRegister    byte = 8  // queue name
	opLeasePut    byte = 9  // key, seq, attempt, deliveries, deadline, leased, firstFailed, error, item
	opLeaseDel    byte = 10 // key, seq
	opLeaseUpdate byte = 11 // key, seq, attempt, deliveries, deadline, leased, firstFailed, error
	opSeq         byte = 12 // key, seq (snapshots: ids are never reused)
	opLeaseToken  byte = 13 // key, seq, token (follows a lease put or update that set one)
	opIdemPut     byte = 14 // key, idempotency key, expireAt, record (engine.IdempotencyRecord.Encode)
	// 15-17: declared settings and queue deletion (settings.go). New
	// operations take the next numbers; a number is never reused.
	// 40-42: statistics (stats.go).
	opRemoveAt byte = 60 // key, index (one entry out of a list: a DLQ entry deleted)
)

const (
	partLast byte = 0
	partMore byte = 1
)

func splitParts(rec []byte) [][]byte {
	body := rec[1:]
	var parts [][]byte
	for len(body) > 0 {
		n := min(len(body), partSize-1)
		flag := partMore
		if n == len(body) {
			flag = partLast
		}
		part := make([]byte, 0, n+1)
		part = append(part, flag)
		parts = append(parts, append(part, body[:n]...))
		body = body[n:]
	}
	return parts
}

// replayer reassembles split records during replay.
type replayer struct {
	pending []byte
	inGroup bool
	start   int64 // log offset of the pending group's first part
}

func (r *replayer) feed(e *Engine, off int64, rec []byte) error {
	if len(rec) == 0 {
		return fmt.Errorf("empty log record")
	}
	switch rec[0] {
	case partMore:
		if !r.inGroup {
			r.inGroup, r.start = true, off
		}
		r.pending = append(r.pending, rec[1:]...)
		return nil
	case partLast:
		if !r.inGroup {
			return e.applyRecord(rec[1:])
		}
		whole := append(r.pending, rec[1:]...) //nolint:gocritic // appendAssign: pending is dropped below; whole takes its buffer
		r.pending, r.inGroup = nil, false
		return e.applyRecord(whole)
	}
	return fmt.Errorf("log record starts with unknown flag %d", rec[0])
}

// unfinished reports where a group that never got its last part began.
func (r *replayer) unfinished() (int64, bool) { return r.start, r.inGroup }

// tx applies one call's changes and collects their record.
type tx struct {
	e       *Engine
	rec     []byte
	on      bool            // recording (durable engine)
	gated   bool            // the compaction gate is held and rec is pooled
	pooled  *[]byte         // where rec came from
	notify  []*waiter       // consumers served by this change, woken once logged
	undo    []func(*object) // take the change back if its record is not logged
	undoKey string          // the key undo applies to
	opName  string          // what the change is, for errors (the caller adds the names)
	pos     int64           // log position to wait for; 0 when nothing is pending
}

func (t *tx) op(code byte, key string) {
	t.rec = append(t.rec, code)
	t.str(key)
}

func (t *tx) str(s string) {
	t.rec = binary.AppendUvarint(t.rec, uint64(len(s)))
	t.rec = append(t.rec, s...)
}

func (t *tx) uint(v uint64) { t.rec = binary.AppendUvarint(t.rec, v) }
func (t *tx) int(v int64)   { t.rec = binary.AppendVarint(t.rec, v) }

func (t *tx) pushBack(o *object, s string) {
	o.list.PushBack(s)
	if t.on {
		t.op(opPushBack, o.key)
		t.str(s)
	}
}

func (t *tx) pushFront(o *object, s string) {
	o.list.PushFront(s)
	if t.on {
		t.op(opPushFront, o.key)
		t.str(s)
	}
}

// popFront removes up to n items from the head and returns them.
func (t *tx) popFront(o *object, n int) []string {
	if n > o.list.Len() {
		n = o.list.Len()
	}
	if n <= 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i], _ = o.list.PopFront()
	}
	if t.on {
		t.op(opPopFront, o.key)
		t.uint(uint64(n))
	}
	return out
}

// popOne removes the head; the caller checked the list is not empty.
func (t *tx) popOne(o *object) string {
	s, _ := o.list.PopFront()
	if t.on {
		t.op(opPopFront, o.key)
		t.uint(1)
	}
	return s
}

// removeAt removes the i-th item from the head; the caller checked
// 0 <= i < Len.
func (t *tx) removeAt(o *object, i int) string {
	s := o.list.RemoveAt(i)
	if t.on {
		t.op(opRemoveAt, o.key)
		t.uint(uint64(i))
	}
	return s
}

func (t *tx) clearList(o *object) {
	o.list.Clear()
	if t.on {
		t.op(opClearList, o.key)
	}
}

func (t *tx) setStr(o *object, v string, expireAt int64) {
	o.hasStr, o.str, o.expireAt = true, v, expireAt
	if t.on {
		t.op(opSetStr, o.key)
		t.str(v)
		t.int(expireAt)
	}
}

func (t *tx) delStr(o *object) {
	o.hasStr, o.str, o.expireAt = false, "", 0
	if t.on {
		t.op(opDelStr, o.key)
	}
}

func (t *tx) expire(o *object, expireAt int64) {
	o.expireAt = expireAt
	if t.on {
		t.op(opExpire, o.key)
		t.int(expireAt)
	}
}

// register records o's queue name in the registry, once per queue.
func (t *tx) register(o *object, name string) {
	q := o.queue()
	if q.registered {
		return
	}
	q.registered = true
	if t.e.registerQueue(name) && t.on {
		t.op(opRegister, name)
	}
}

func (t *tx) leasePut(o *object, l *lease) {
	q := o.queue()
	q.put(l)
	if t.on {
		t.encodeLease(o.key, l)
	}
}

// encodeLease writes an opLeasePut; snapshots use it too.
func (t *tx) encodeLease(key string, l *lease) {
	t.op(opLeasePut, key)
	t.uint(l.id)
	t.uint(uint64(l.attempt))
	t.uint(uint64(l.deliveries))
	t.int(l.deadline)
	t.bool(l.leased)
	t.str(l.firstFailed)
	t.str(l.err)
	t.str(l.item)
	t.encodeToken(key, l)
}

// encodeToken records a lease's token in an op of its own, so that logs
// written before delivery ids had one still replay.
func (t *tx) encodeToken(key string, l *lease) {
	if l.token != 0 {
		t.op(opLeaseToken, key)
		t.uint(l.id)
		t.uint(l.token)
	}
	t.encodeLeaseAt(key, l)
}

func (t *tx) leaseDel(o *object, l *lease) {
	o.queue().remove(l)
	if t.on {
		t.op(opLeaseDel, o.key)
		t.uint(l.id)
	}
}

// leaseUpdate gives l a new state; u holds every field but id and item.
func (t *tx) leaseUpdate(o *object, l *lease, u lease) {
	o.queue().update(l, u)
	if t.on {
		t.op(opLeaseUpdate, o.key)
		t.uint(l.id)
		t.uint(uint64(l.attempt))
		t.uint(uint64(l.deliveries))
		t.int(l.deadline)
		t.bool(l.leased)
		t.str(l.firstFailed)
		t.str(l.err)
		t.encodeToken(o.key, l)
	}
}

func (t *tx) bool(b bool) {
	if b {
		t.rec = append(t.rec, 1)
	} else {
		t.rec = append(t.rec, 0)
	}
}

// decoder reads one record.
type decoder struct {
	b   []byte
	off int
	err error
}

var errShortRecord = errors.New("record ends inside an operation")

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) byte() byte {
	if d.err != nil || d.off >= len(d.b) {
		d.fail(errShortRecord)
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

func (d *decoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail(errShortRecord)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) int() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail(errShortRecord)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) str() string {
	n := d.uint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail(errShortRecord)
		return ""
	}
	s := string(d.b[d.off : d.off+int(n)])
	d.off += int(n)
	return s
}

func (d *decoder) bool() bool { return d.byte() != 0 }

// applyRecord replays one record against e, which nobody else uses yet.
func (e *Engine) applyRecord(rec []byte) error {
	d := &decoder{b: rec}
	t := &tx{e: e}
	for d.off < len(d.b) && d.err == nil {
		code := d.byte()
		key := d.str()
		if d.err != nil {
			break
		}
		if code == opRegister {
			e.registerQueue(key)
			continue
		}
		if e.applySettingsOp(t, d, code, key) || e.applyStatsOp(t, d, code, key) {
			continue
		}
		o := e.lookup(key, true)
		switch code {
		case opPushBack:
			t.pushBack(o, d.str())
		case opPushFront:
			t.pushFront(o, d.str())
		case opPopFront:
			n := d.uint()
			if n > uint64(o.list.Len()) {
				d.fail(fmt.Errorf("pop of %d items from %q, which holds %d", n, key, o.list.Len()))
				break
			}
			t.popFront(o, int(n))
		case opClearList:
			t.clearList(o)
		case opRemoveAt:
			i := d.uint()
			if i >= uint64(o.list.Len()) {
				d.fail(fmt.Errorf("removal of item %d from %q, which holds %d", i, key, o.list.Len()))
				break
			}
			t.removeAt(o, int(i))
		case opSetStr:
			v := d.str()
			t.setStr(o, v, d.int())
		case opDelStr:
			t.delStr(o)
		case opExpire:
			t.expire(o, d.int())
		case opLeasePut:
			l := &lease{id: d.uint(), attempt: int(d.uint()), deliveries: int(d.uint()), deadline: d.int(), leased: d.bool()}
			l.firstFailed = d.str()
			l.err = d.str()
			l.item = d.str()
			if d.err == nil {
				q := o.queue()
				if old := q.leases[l.id]; old != nil {
					q.remove(old)
				}
				t.leasePut(o, l)
			}
		case opLeaseDel:
			id := d.uint()
			if l := o.queue().leases[id]; l != nil {
				t.leaseDel(o, l)
			}
		case opLeaseUpdate:
			id := d.uint()
			u := lease{attempt: int(d.uint()), deliveries: int(d.uint()), deadline: d.int(), leased: d.bool()}
			u.firstFailed = d.str()
			u.err = d.str()
			if l := o.queue().leases[id]; l != nil && d.err == nil {
				t.leaseUpdate(o, l, u)
			}
		case opLeaseToken:
			id, token := d.uint(), d.uint()
			if l := o.queue().leases[id]; l != nil && d.err == nil {
				l.token = token
			}
		case opSeq:
			if s := d.uint(); s > o.queue().seq {
				o.queue().seq = s
			}
		case opIdemPut:
			k := d.str()
			expireAt := d.int()
			v := d.str()
			if d.err != nil {
				break
			}
			rec, err := engine.DecodeIdempotencyRecord(v)
			if err != nil {
				d.fail(err)
				break
			}
			// A record whose window closed while the engine was down is
			// gone, as it would have expired.
			if expireAt > e.now() {
				t.idemPut(o, k, rec, expireAt)
			}
		default:
			d.fail(fmt.Errorf("unknown operation %d", code))
		}
	}
	if d.err != nil {
		return fmt.Errorf("bad log record at byte %d: %w", d.off, d.err)
	}
	return nil
}

// A delivery id is "<seq>.<delivery number>.<token>", as on Redis: the
// item keeps its sequence number across redeliveries and the delivery
// number tells them apart (the attempt cannot: a release keeps it), so an
// id from an earlier delivery never settles a later one. The token, 64
// random bits drawn anew for every delivery, written as 16 hex digits,
// makes an id impossible to guess from another: only the consumer it was
// handed to can settle it.
func formatID(seq uint64, delivery int, token uint64) string {
	// Every receive formats an id and every ack parses one, so this is
	// written out rather than left to fmt.Sprintf("%d.%d.%016x"), which
	// took a third of a receive+ack's time.
	var buf [20 + 1 + 20 + 1 + 16]byte
	b := strconv.AppendUint(buf[:0], seq, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(delivery), 10)
	b = append(b, '.')
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, digits[token>>shift&0xf])
	}
	return string(b)
}

func parseID(s string) (seq uint64, delivery int, token uint64, ok bool) {
	a, rest, found := strings.Cut(s, ".")
	if !found {
		return 0, 0, 0, false
	}
	b, c, found := strings.Cut(rest, ".")
	// Only the canonical spelling names a delivery (decimal digits without
	// leading zeros or sign, 16 lower case hex digits), so one delivery has
	// exactly one id: the one formatID writes.
	if !found || len(c) != 16 || !canonicalDecimal(a) || !canonicalDecimal(b) || !lowerHex(c) {
		return 0, 0, 0, false
	}
	seq, err1 := strconv.ParseUint(a, 10, 64)
	n, err2 := strconv.Atoi(b)
	token, err3 := strconv.ParseUint(c, 16, 64)
	if err1 != nil || err2 != nil || err3 != nil || seq == 0 || n < 1 {
		return 0, 0, 0, false
	}
	return seq, n, token, true
}

// canonicalDecimal reports whether s is decimal digits only, without a
// leading zero unless it is "0".
func canonicalDecimal(s string) bool {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// lowerHex reports whether s is hex digits in lower case only.
func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && (s[i] < 'a' || s[i] > 'f') {
			return false
		}
	}
	return true
}

// newToken draws a delivery id's random part; never 0, which marks a
// lease written before ids had one.
func newToken() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
		if v := binary.LittleEndian.Uint64(b[:]); v != 0 {
			return v
		}
	}
}
