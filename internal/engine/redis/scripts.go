package redis

import (
	_ "embed"
)

// Every script the engine runs. Each is embedded by name; the ones that
// write dead-letter entries get envelope.lua prepended, so that the
// Python-compatible JSON quoting exists once, and the ones that add items
// get settings.lua, so that declared settings are resolved once; those
// that add or release scheduled items get scheduled.lua, and the ones that
// do counted work get stats.lua.
var (
	//go:embed scripts/envelope.lua
	envelopeLua string
	//go:embed scripts/settings.lua
	settingsLua string
	//go:embed scripts/stats.lua
	statsLua string
	//go:embed scripts/batch.lua
	batchLua string
	//go:embed scripts/scheduled.lua
	scheduledLua string
	//go:embed scripts/lease_inflight.lua
	leaseInFlightLua string
	//go:embed scripts/queue_pop.lua
	queuePopLua string
	//go:embed scripts/queue_pop_check.lua
	queuePopCheckLua string
	//go:embed scripts/queue_declare.lua
	queueDeclareLua string
	//go:embed scripts/queue_pause.lua
	queuePauseLua string
	//go:embed scripts/queue_delete.lua
	queueDeleteLua string
	//go:embed scripts/queue_add.lua
	queueAddLua string
	//go:embed scripts/queue_add_keyed.lua
	addKeyedLua string
	//go:embed scripts/dlq_requeue.lua
	dlqRequeueLua string
	//go:embed scripts/dlq_remove.lua
	dlqRemoveLua string
	//go:embed scripts/lease_receive.lua
	leaseReceiveLua string
	//go:embed scripts/lease_ack_batch.lua
	leaseAckBatchLua string
	//go:embed scripts/lease_extend.lua
	leaseExtendLua string
	//go:embed scripts/lease_nack.lua
	leaseNackLua string
	//go:embed scripts/cache_set.lua
	cacheSetLua string
	//go:embed scripts/cache_expire.lua
	cacheExpireLua string
	//go:embed scripts/lock_acquire.lua
	lockAcquireLua string
	//go:embed scripts/lock_release.lua
	lockReleaseLua string
	//go:embed scripts/lock_refresh.lua
	lockRefreshLua string
)

// engineScripts holds the loaded scripts of one engine, all of one type
// (script). rueidis.Lua runs EVALSHA and falls back to EVAL when the server
// answers NOSCRIPT (after a restart or SCRIPT FLUSH), so nothing has to be
// preloaded; writeDurable does the same by hand.
type engineScripts struct {
	queueAdd     *script
	addKeyed     *script
	dlqRequeue   *script
	dlqRemove    *script
	leaseReceive *script
	leaseAck     *script
	leaseExtend  *script
	leaseNack    *script
	// cacheSet is SET guarded against replacing another kind of value (see
	// scripts/cache_set.lua), in one step: a TYPE read before a plain SET
	// would let a queue be created in between and then destroyed.
	cacheSet    *script
	cacheExpire *script
	// The lock scripts compare the holder's token and change the key in
	// one step; a GET followed by a DEL from the client could delete a lock
	// that expired and was taken by someone else in between.
	lockAcquire *script
	lockRelease *script
	lockRefresh *script
	// Declared queues (settings.go).
	queuePop      *script
	queuePopCheck *script
	queueDeclare  *script
	queuePause    *script
	queueDelete   *script
	// leaseInFlight counts by the server's clock (scripts/lease_inflight.lua).
	leaseInFlight *script
	// deliveries reads a page of deliveries (stats.go).
	deliveries *script
}

func newEngineScripts() *engineScripts {
	// Every script that counts gets stats.lua (stats.go).
	withStats := func(body string) string { return statsLua + "\n" + body }
	withEnvelope := func(body string) string { return withStats(envelopeLua + "\n" + body) }
	withSettings := func(body string) string {
		return withStats(envelopeLua + "\n" + settingsLua + "\n" + scheduledLua + "\n" + body)
	}
	withScheduled := func(body string) string { return withStats(envelopeLua + "\n" + scheduledLua + "\n" + body) }
	// Every script that leases, settles, counts or deletes deliveries
	// knows batches (scripts/batch.lua).
	withBatch := func(body string) string { return batchLua + "\n" + body }
	return &engineScripts{
		queueAdd:      newScript(withSettings(queueAddLua)),
		addKeyed:      newScript(withSettings(addKeyedLua)),
		dlqRequeue:    newScript(withSettings(dlqRequeueLua)),
		dlqRemove:     newScript(dlqRemoveLua),
		leaseReceive:  newScript(withScheduled(withBatch(leaseReceiveLua))),
		leaseAck:      newScript(withStats(withBatch(leaseAckBatchLua))),
		leaseExtend:   newScript(withBatch(leaseExtendLua)),
		leaseNack:     newScript(withEnvelope(withBatch(leaseNackLua))),
		cacheSet:      newScript(cacheSetLua),
		cacheExpire:   newScript(cacheExpireLua),
		lockAcquire:   newScript(lockAcquireLua),
		lockRelease:   newScript(lockReleaseLua),
		lockRefresh:   newScript(lockRefreshLua),
		queuePop:      newScript(withScheduled(queuePopLua)),
		queuePopCheck: newScript(withStats(queuePopCheckLua)),
		queueDeclare:  newScript(queueDeclareLua),
		queuePause:    newScript(queuePauseLua),
		queueDelete:   newScript(withBatch(queueDeleteLua)),
		leaseInFlight: newScript(withBatch(leaseInFlightLua)),
		deliveries:    newScript(withBatch(queueDeliveriesLua)),
	}
}
