package traced_test

import (
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/engine/embedded"
	"github.com/sluicehq/sluice/internal/engine/enginetest"
	"github.com/sluicehq/sluice/internal/engine/traced"
)

// TestConformanceTraced holds the traced engine to the suite every engine
// passes: the decorator must change nothing but the spans.
func TestConformanceTraced(t *testing.T) {
	if testing.Short() {
		t.Skip("the whole conformance suite; -short skips it")
	}
	enginetest.Run(t, enginetest.Harness{
		Name: "traced-embedded",
		New: func(t *testing.T) engine.Engine {
			eng, err := embedded.New(embedded.Options{})
			if err != nil {
				t.Fatal(err)
			}
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewInMemoryExporter()))
			return traced.Wrap(eng, tp)
		},
		Caps: enginetest.Capabilities{Kind: "embedded"},
	})
}
