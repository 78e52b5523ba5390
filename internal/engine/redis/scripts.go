package redis

import (
	_ "embed"

	"github.com/redis/rueidis"
)

// The queue, dead-letter and lease scripts. Each is embedded by name; the
// ones that write dead-letter entries get envelope.lua prepended, so that
// the Python-compatible JSON quoting exists once.
var (
	//go:embed scripts/envelope.lua
	envelopeLua string
	//go:embed scripts/queue_add.lua
	queueAddLua string
	//go:embed scripts/dlq_requeue.lua
	dlqRequeueLua string
	//go:embed scripts/lease_receive.lua
	leaseReceiveLua string
	//go:embed scripts/lease_ack.lua
	leaseAckLua string
	//go:embed scripts/lease_extend.lua
	leaseExtendLua string
	//go:embed scripts/lease_nack.lua
	leaseNackLua string
)

// queueScripts holds the loaded scripts of one engine. rueidis.Lua runs
// EVALSHA and falls back to EVAL when the server answers NOSCRIPT (after a
// restart or SCRIPT FLUSH), so nothing has to be preloaded.
type queueScripts struct {
	queueAdd     *rueidis.Lua
	dlqRequeue   *rueidis.Lua
	leaseReceive *rueidis.Lua
	leaseAck     *rueidis.Lua
	leaseExtend  *rueidis.Lua
	leaseNack    *rueidis.Lua
}

func newQueueScripts() *queueScripts {
	withEnvelope := func(body string) string { return envelopeLua + "\n" + body }
	return &queueScripts{
		queueAdd:     rueidis.NewLuaScript(withEnvelope(queueAddLua)),
		dlqRequeue:   rueidis.NewLuaScript(withEnvelope(dlqRequeueLua)),
		leaseReceive: rueidis.NewLuaScript(withEnvelope(leaseReceiveLua)),
		leaseAck:     rueidis.NewLuaScript(leaseAckLua),
		leaseExtend:  rueidis.NewLuaScript(leaseExtendLua),
		leaseNack:    rueidis.NewLuaScript(withEnvelope(leaseNackLua)),
	}
}
