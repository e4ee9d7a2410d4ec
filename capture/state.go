package capture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"

	"github.com/tributary-cdc/tributary/internal/gcp"
)

// slotRecord is written to GCS once the slot exists. Its presence while the
// slot is gone means the slot was lost (a failover to a replica without it,
// or a manual drop): the changes between the last confirmed position and a
// new slot would be missing, so capture refuses to carry on silently.
type slotRecord struct {
	Slot            string    `json:"slot"`
	Publication     string    `json:"publication"`
	ConsistentPoint string    `json:"consistent_point,omitempty"`
	RecordedAt      time.Time `json:"recorded_at"`
}

func (c *Capturer) slotRecordName() string {
	name := "_state/slot-" + c.cfg.Slot + ".json"
	if c.cfg.Prefix != "" {
		name = c.cfg.Prefix + "/" + name
	}
	return name
}

// slotRecorded reports whether a record of the slot exists.
func (c *Capturer) slotRecorded(ctx context.Context) (bool, error) {
	_, err := c.gcs.Bucket(c.cfg.Bucket).Object(c.slotRecordName()).Attrs(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading gs://%s/%s: %w", c.cfg.Bucket, c.slotRecordName(), err)
	}
	return true, nil
}

// recordSlot writes the record unless it is there.
func (c *Capturer) recordSlot(ctx context.Context, s slotState) error {
	body, err := json.MarshalIndent(slotRecord{
		Slot: c.cfg.Slot, Publication: c.cfg.Publication, ConsistentPoint: s.confirmed.String(), RecordedAt: time.Now().UTC(),
	}, "", "  ")
	if err != nil {
		return err
	}
	err = gcp.WriteNew(ctx, c.gcs.Bucket(c.cfg.Bucket).Object(c.slotRecordName()), "application/json", body, nil)
	var gerr *googleapi.Error
	if errors.As(err, &gerr) && gerr.Code == http.StatusPreconditionFailed {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recording slot in gs://%s/%s: %w", c.cfg.Bucket, c.slotRecordName(), err)
	}
	return nil
}
