package capture

import "testing"

func TestPublicationSQL(t *testing.T) {
	tests := []struct {
		name    string
		tables  []TableName
		schemas []string
		want    string
	}{
		{"tables", []TableName{{"public", "orders"}, {"public", "Order Items"}}, nil,
			`CREATE PUBLICATION "tributary" FOR TABLE "public"."orders", "public"."Order Items" WITH (publish_via_partition_root = true)`},
		{"schemas", nil, []string{"public", `we"ird`},
			`CREATE PUBLICATION "tributary" FOR TABLES IN SCHEMA "public", "we""ird" WITH (publish_via_partition_root = true)`},
		{"everything", nil, nil, `CREATE PUBLICATION "tributary" FOR ALL TABLES WITH (publish_via_partition_root = true)`},
	}
	for _, tt := range tests {
		if got := publicationSQL("tributary", tt.tables, tt.schemas); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
}
