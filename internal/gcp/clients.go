package gcp

import (
	"context"
	"fmt"
	"os"
	"strings"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/storage"
	"google.golang.org/api/option"
)

// EnvBigQueryEmulator names the BigQuery emulator's REST address, as
// host:port or http://host:port. The BigQuery client library does not read it
// itself; BigQuery does.
const EnvBigQueryEmulator = "BIGQUERY_EMULATOR_HOST"

// BigQueryEndpoint returns the REST endpoint for the BigQuery emulator named
// by BIGQUERY_EMULATOR_HOST, or "" when it is unset.
func BigQueryEndpoint() string {
	host := os.Getenv(EnvBigQueryEmulator)
	if host == "" {
		return ""
	}
	if !strings.Contains(host, "://") {
		host = "http://" + host
	}
	return strings.TrimRight(host, "/") + "/bigquery/v2/"
}

// BigQuery returns a BigQuery client for project.
func BigQuery(ctx context.Context, project string, opts ...option.ClientOption) (*bigquery.Client, error) {
	if ep := BigQueryEndpoint(); ep != "" {
		opts = append(opts, option.WithEndpoint(ep), option.WithoutAuthentication())
	}
	c, err := bigquery.NewClient(ctx, project, opts...)
	if err != nil {
		return nil, fmt.Errorf("creating BigQuery client: %w", err)
	}
	return c, nil
}

// Storage returns a Cloud Storage client. The client library honours
// STORAGE_EMULATOR_HOST itself.
func Storage(ctx context.Context, opts ...option.ClientOption) (*storage.Client, error) {
	c, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("creating Cloud Storage client: %w", err)
	}
	return c, nil
}

// PubSub returns a Pub/Sub client for project. The client library honours
// PUBSUB_EMULATOR_HOST itself.
func PubSub(ctx context.Context, project string, opts ...option.ClientOption) (*pubsub.Client, error) {
	c, err := pubsub.NewClient(ctx, project, opts...)
	if err != nil {
		return nil, fmt.Errorf("creating Pub/Sub client: %w", err)
	}
	return c, nil
}

// Clients are the three long-lived clients a command uses.
type Clients struct {
	PubSub   *pubsub.Client
	Storage  *storage.Client
	BigQuery *bigquery.Client
}

// Open creates the three clients for project; on error none is left open.
func Open(ctx context.Context, project string) (*Clients, error) {
	c := &Clients{}
	var err error
	if c.PubSub, err = PubSub(ctx, project); err == nil {
		if c.Storage, err = Storage(ctx); err == nil {
			c.BigQuery, err = BigQuery(ctx, project)
		}
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close closes every client that was opened.
func (c *Clients) Close() {
	if c.PubSub != nil {
		_ = c.PubSub.Close()
	}
	if c.Storage != nil {
		_ = c.Storage.Close()
	}
	if c.BigQuery != nil {
		_ = c.BigQuery.Close()
	}
}
