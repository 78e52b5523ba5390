package redis

import (
	_ "embed"
)

// The queue, dead-letter and lease scripts. Each is embedded by name; the
// ones that write dead-letter entries get envelope.lua prepended, so that
// the Python-compatible JSON quoting exists once, and the ones that add
// items get settings.lua, so that declared settings are resolved once.
var (
	//go:embed scripts/envelope.lua
	envelopeLua string
	//go:embed scripts/settings.lua
	settingsLua string
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
	//go:embed scripts/lease_receive.lua
	leaseReceiveLua string
	//go:embed scripts/lease_ack_batch.lua
	leaseAckBatchLua string
	//go:embed scripts/lease_extend.lua
	leaseExtendLua string
	//go:embed scripts/lease_nack.lua
	leaseNackLua string
)

// queueScripts holds the loaded scripts of one engine. rueidis.Lua runs
// EVALSHA and falls back to EVAL when the server answers NOSCRIPT (after a
// restart or SCRIPT FLUSH), so nothing has to be preloaded; writeDurable
// does the same by hand.
type queueScripts struct {
	queueAdd     *script
	addKeyed     *script
	dlqRequeue   *script
	leaseReceive *script
	leaseAck     *script
	leaseExtend  *script
	leaseNack    *script
	// Declared queues (settings.go).
	queuePop      *script
	queuePopCheck *script
	queueDeclare  *script
	queuePause    *script
	queueDelete   *script
}

func newQueueScripts() *queueScripts {
	withEnvelope := func(body string) string { return envelopeLua + "\n" + body }
	withSettings := func(body string) string { return envelopeLua + "\n" + settingsLua + "\n" + body }
	return &queueScripts{
		queueAdd:      newScript(withSettings(queueAddLua)),
		addKeyed:      newScript(withSettings(addKeyedLua)),
		dlqRequeue:    newScript(withSettings(dlqRequeueLua)),
		queuePop:      newScript(queuePopLua),
		queuePopCheck: newScript(queuePopCheckLua),
		queueDeclare:  newScript(queueDeclareLua),
		queuePause:    newScript(queuePauseLua),
		queueDelete:   newScript(queueDeleteLua),
		leaseReceive:  newScript(withEnvelope(leaseReceiveLua)),
		leaseAck:      newScript(leaseAckBatchLua),
		leaseExtend:   newScript(leaseExtendLua),
		leaseNack:     newScript(withEnvelope(leaseNackLua)),
	}
}
