package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/tracing"
)

// tracingShutdownTimeout bounds the export of the spans still buffered
// when the command exits: an unreachable collector must not hold it up.
const tracingShutdownTimeout = 5 * time.Second

// startTracing sets up OpenTelemetry traces from the standard OTEL_*
// variables (off unless they ask for it) and says once whether they are
// on, naming the endpoint's host only: its path and the headers
// (OTEL_EXPORTER_OTLP_HEADERS) may hold credentials. A setting it cannot
// honour (the grpc protocol) is a usage error.
func (e *env) startTracing(log *slog.Logger) (*tracing.Provider, error) {
	cfg, err := tracing.ConfigFromEnv(e.getenv, sluice.Version)
	if err != nil {
		return nil, usagef("%v", err)
	}
	tp, err := tracing.New(cfg, log)
	if err != nil {
		return nil, usagef("%v", err)
	}
	if cfg.Enabled {
		log.Info("tracing on", "exporter", "otlp", "endpoint_host", cfg.EndpointHost(), "service", cfg.ServiceName)
	} else {
		log.Info("tracing off")
	}
	return tp, nil
}

// stopTracing flushes the spans still buffered, within
// tracingShutdownTimeout.
func stopTracing(tp *tracing.Provider, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), tracingShutdownTimeout)
	defer cancel()
	if tp.Shutdown(ctx) != nil {
		// The exporter's error names the endpoint's full URL, which may
		// carry a credential: it is not repeated here.
		log.Warn("could not export the last spans; is the OTLP endpoint reachable?", "endpoint_timeout", tracingShutdownTimeout)
	}
}
