package metrics_test

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/metrics"
)

// A service embedding Sluice registers the collector on its registry (the
// one its /metrics handler serves) and gets sluice serve's queue metrics.
func Example() {
	ctx := context.Background()
	client, err := sluice.Open(ctx, "", nil) // or a redis:// URL
	if err != nil {
		panic(err)
	}
	defer client.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(client, nil))

	q := client.Queue("emails")
	for _, to := range []string{"a@example.com", "b@example.com"} {
		if _, err := q.Add(ctx, map[string]string{"to": to}, nil); err != nil {
			panic(err)
		}
	}

	families, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, f := range families {
		switch f.GetName() {
		case "sluice_queue_length", "sluice_queue_added_total", "sluice_engine_up":
			for _, m := range f.GetMetric() {
				v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
				fmt.Println(f.GetName(), labels(m.GetLabel()), v)
			}
		}
	}
	// Output:
	// sluice_engine_up  1
	// sluice_queue_added_total queue=emails 2
	// sluice_queue_length queue=emails 2
}

func labels(ls []*dto.LabelPair) string {
	s := ""
	for _, l := range ls {
		s += l.GetName() + "=" + l.GetValue()
	}
	return s
}
