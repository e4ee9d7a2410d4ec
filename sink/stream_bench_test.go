package sink

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tributary-cdc/tributary/capture"
)

// BenchmarkSinkCommitToQueryable measures, on the local stack, the time
// from a Postgres commit returning to its row being in the current-state
// table, in stream mode and in load mode. Each iteration commits rows one
// at a time, each waited for (polled every 100 ms, so a figure is up to a
// poll and a query high), and reports the p50 and p99 over all of them.
// It is skipped when the local stack is not running (no cached emulator,
// or -short).
func BenchmarkSinkCommitToQueryable(b *testing.B) {
	const commits = 15
	settings := []struct {
		name, table string
		cfg         func(*Config)
	}{
		{"stream/flush_age=500ms,stream_apply_interval=1s", "bench_latency_stream", func(c *Config) {
			c.FlushAge, c.StreamApplyInterval, c.LoadInterval = 500*time.Millisecond, time.Second, 10*time.Minute
			c.Tables = map[string]TableConfig{"public.bench_latency_stream": {Mode: ModeStream}}
		}},
		{"load/flush_age=500ms,load_interval=2s", "bench_latency_load", func(c *Config) {
			c.FlushAge, c.LoadInterval = 500*time.Millisecond, 2*time.Second
		}},
	}
	for _, set := range settings {
		b.Run(set.name, func(b *testing.B) {
			if stack == nil {
				b.Skip("the local stack is not running (no cached BigQuery emulator, or -short)")
			}
			p := newPipeline(b, set.table, []capture.TableName{{Schema: "public", Name: set.table}},
				`CREATE TABLE `+set.table+` (id int PRIMARY KEY, at timestamptz)`)
			set.cfg(&p.cfg)
			p.startSink()
			b.Cleanup(func() { p.stopSink(false) })
			// One row first, so that the BigQuery tables exist.
			p.exec(`INSERT INTO ` + set.table + ` VALUES (0, now())`)
			p.waitUntil("the first row is queryable", 2*time.Minute, func() (bool, error) {
				rows, err := p.bqRows(`SELECT COUNT(*) FROM ` + p.bqTable(set.table, ""))
				if err != nil && strings.Contains(err.Error(), "not found") {
					return false, nil
				}
				return err == nil && len(rows) == 1 && rows[0] == "1", err
			})
			var lags []time.Duration
			id := 0
			b.ResetTimer()
			for range b.N {
				for range commits {
					id++
					p.exec(`INSERT INTO `+set.table+` VALUES ($1, now())`, id)
					committed := time.Now()
					for {
						rows, err := p.bqRows(fmt.Sprintf(`SELECT COUNT(*) FROM %s WHERE id = %d`, p.bqTable(set.table, ""), id))
						if err != nil {
							b.Fatal(err)
						}
						if len(rows) == 1 && rows[0] == "1" {
							lags = append(lags, time.Since(committed))
							break
						}
						if time.Since(committed) > 2*time.Minute {
							b.Fatalf("row %d not queryable after 2 minutes", id)
						}
						time.Sleep(100 * time.Millisecond)
					}
				}
			}
			b.StopTimer()
			sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(lags[len(lags)/2]), "p50-ms")
			b.ReportMetric(ms(lags[(len(lags)*99)/100]), "p99-ms")
			b.ReportMetric(ms(lags[len(lags)-1]), "max-ms")
			b.ReportMetric(float64(len(lags)), "commits")
			b.ReportMetric(0, "ns/op")
		})
	}
}
