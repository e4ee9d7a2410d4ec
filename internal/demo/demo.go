// Package demo is the marketplace that `make demo` streams into BigQuery: its
// schema (customers, pros, requests, quotes and reviews, job preferences as
// jsonb; composite keys; reviews partitioned by month), a seed, a workload
// generator of inserts, updates and deletes at a chosen rate, and the
// measurements the demo prints. It is used by the demo command only.
package demo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Tables are the demo's tables, as Postgres names them.
var Tables = []string{"customers", "pros", "requests", "quotes", "job_preferences", "reviews"}

// Categories of work a request asks for.
var Categories = []string{"plumbing", "electrical", "cleaning", "moving", "painting", "gardening"}

// Schema creates the marketplace. Reviews are partitioned by month (the
// current month, the one before and the one after), and published as one
// table through their root.
func Schema(ctx context.Context, db *pgx.Conn, now time.Time) error {
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	stmts := []string{
		`CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, email text, city text, created_at timestamptz NOT NULL DEFAULT now())`,
		`CREATE TABLE pros (id bigint PRIMARY KEY, name text NOT NULL, category text NOT NULL, rating numeric(3,2), created_at timestamptz NOT NULL DEFAULT now())`,
		`CREATE TABLE requests (id bigint PRIMARY KEY, customer_id bigint NOT NULL, category text NOT NULL, details text, status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`,
		`CREATE TABLE quotes (request_id bigint, pro_id bigint, price numeric(10,2) NOT NULL, message text, created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (request_id, pro_id))`,
		`CREATE TABLE job_preferences (pro_id bigint, category text, prefs jsonb NOT NULL, PRIMARY KEY (pro_id, category))`,
		`CREATE TABLE reviews (id bigint, created_at timestamptz NOT NULL, pro_id bigint NOT NULL, customer_id bigint NOT NULL, stars int NOT NULL, body text, PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at)`,
	}
	for i := -1; i <= 1; i++ {
		from, to := month.AddDate(0, i, 0), month.AddDate(0, i+1, 0)
		stmts = append(stmts, fmt.Sprintf(`CREATE TABLE reviews_%s PARTITION OF reviews FOR VALUES FROM ('%s') TO ('%s')`,
			from.Format("2006_01"), from.Format("2006-01-02"), to.Format("2006-01-02")))
	}
	for _, q := range stmts {
		if _, err := db.Exec(ctx, q); err != nil {
			return fmt.Errorf("creating the demo schema: %w", err)
		}
	}
	return nil
}

// Seed inserts a starting population.
func Seed(ctx context.Context, db *pgx.Conn) error {
	stmts := []string{
		`INSERT INTO customers (id, name, email, city) SELECT g, 'Customer ' || g, 'c' || g || '@example.com', (ARRAY['Berlin','Lisbon','Austin','Osaka'])[1 + g % 4] FROM generate_series(1, 200) g`,
		`INSERT INTO pros (id, name, category, rating) SELECT g, 'Pro ' || g, (ARRAY['plumbing','electrical','cleaning','moving','painting','gardening'])[1 + g % 6], 3 + (g % 200) / 100.0 FROM generate_series(1, 60) g`,
		`INSERT INTO requests (id, customer_id, category, details, status) SELECT g, 1 + g % 200, (ARRAY['plumbing','electrical','cleaning','moving','painting','gardening'])[1 + g % 6], 'Details of request ' || g, 'open' FROM generate_series(1, 100) g`,
		`INSERT INTO job_preferences (pro_id, category, prefs) SELECT g, (ARRAY['plumbing','electrical','cleaning','moving','painting','gardening'])[1 + g % 6], jsonb_build_object('weekends', g % 2 = 0, 'radius', 'within ' || (5 + g % 20) || ' km', 'tags', jsonb_build_array('insured', 'licensed')) FROM generate_series(1, 60) g`,
	}
	for _, q := range stmts {
		if _, err := db.Exec(ctx, q); err != nil {
			return fmt.Errorf("seeding the demo: %w", err)
		}
	}
	return nil
}

// Workload runs a mix of marketplace writes at about rate transactions per
// second until ctx ends. Ops counts what it committed.
type Workload struct {
	Rate int
	Ops  atomic.Int64
}

// Run writes until ctx ends; it returns the first error other than ctx's.
func (w *Workload) Run(ctx context.Context, db *pgx.Conn) error {
	rng := rand.New(rand.NewPCG(1, 2))
	tick := time.NewTicker(time.Second / time.Duration(max(w.Rate, 1)))
	defer tick.Stop()
	var nextCustomer, nextRequest, nextReview int64 = 201, 101, 1
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		var q string
		var args []any
		switch p := rng.IntN(100); {
		case p < 5:
			q, args = `INSERT INTO customers (id, name, email, city) VALUES ($1, $2, $3, 'Lisbon')`, []any{nextCustomer, fmt.Sprintf("Customer %d", nextCustomer), fmt.Sprintf("c%d@example.com", nextCustomer)}
			nextCustomer++
		case p < 25:
			q, args = `INSERT INTO requests (id, customer_id, category, details, status) VALUES ($1, $2, $3, $4, 'open')`,
				[]any{nextRequest, 1 + rng.Int64N(nextCustomer-1), Categories[rng.IntN(len(Categories))], strings.Repeat("Please help. ", 1+rng.IntN(5))}
			nextRequest++
		case p < 60:
			q, args = `INSERT INTO quotes (request_id, pro_id, price, message) VALUES ($1, $2, $3, 'Happy to help') ON CONFLICT (request_id, pro_id) DO UPDATE SET price = EXCLUDED.price`,
				[]any{1 + rng.Int64N(nextRequest-1), 1 + rng.Int64N(60), fmt.Sprintf("%d.%02d", 50+rng.IntN(450), rng.IntN(100))}
		case p < 75:
			q, args = `UPDATE requests SET status = (ARRAY['quoted','hired','done','cancelled'])[1 + floor(random() * 4)::int] WHERE id = $1`, []any{1 + rng.Int64N(nextRequest-1)}
		case p < 85:
			q, args = `UPDATE quotes SET price = price * 0.95 WHERE request_id = $1`, []any{1 + rng.Int64N(nextRequest-1)}
		case p < 90:
			q, args = `DELETE FROM quotes WHERE request_id = $1 AND pro_id = $2`, []any{1 + rng.Int64N(nextRequest-1), 1 + rng.Int64N(60)}
		case p < 95:
			q, args = `INSERT INTO reviews (id, created_at, pro_id, customer_id, stars, body) VALUES ($1, now(), $2, $3, $4, 'Great work')`,
				[]any{nextReview, 1 + rng.Int64N(60), 1 + rng.Int64N(nextCustomer-1), 1 + rng.IntN(5)}
			nextReview++
		default:
			q, args = `INSERT INTO job_preferences (pro_id, category, prefs) VALUES ($1, $2, jsonb_build_object('weekends', random() < 0.5, 'radius', 'anywhere'))
				ON CONFLICT (pro_id, category) DO UPDATE SET prefs = EXCLUDED.prefs`, []any{1 + rng.Int64N(60), Categories[rng.IntN(len(Categories))]}
		}
		if _, err := db.Exec(ctx, q, args...); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("demo workload: %w", err)
		}
		w.Ops.Add(1)
	}
}
