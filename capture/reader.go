package capture

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// reader is one replication session: it decodes pgoutput, publishes each
// committed change and reports the confirmed position back to Postgres.
type reader struct {
	c       *Capturer
	conn    *pgconn.PgConn
	tracker *AckTracker
	enc     *encoder
	pub     *pubsub.Publisher
	results chan pending
	// outbox carries batches of messages, in order, to publishLoop, which
	// hands them to the publisher while this goroutine decodes and encodes
	// the next ones. batch is the one being filled: it goes at a
	// transaction's commit or when it holds handoffCount messages or
	// handoffBytes of data, whichever comes first.
	outbox     chan []outgoing
	batch      []outgoing
	batchBytes int

	relations map[uint32]*Relation
	rowMsg    rowMessage // the row message being published
	ch        Change     // its change
	tx        *txState   // the transaction being published, nil between transactions
	spills    map[uint32]*spill
	streamXid uint32 // xid of the open stream block, 0 outside one
	inStream  bool

	received   pglogrepl.LSN // newest WAL position received
	serverEnd  pglogrepl.LSN // WAL end from the last keepalive
	lastStatus time.Time
}

type txState struct {
	commitLSN  pglogrepl.LSN
	xid        uint32
	commitTime time.Time
	seq        int64
	ack        *TxHandle
}

type pending struct {
	res *pubsub.PublishResult
	key string
	tx  *TxHandle
}

// outgoing is a message on its way to the publisher, already counted in
// its transaction's outstanding events.
type outgoing struct {
	msg *pubsub.Message
	tx  *TxHandle
}

// The size of a batch handed to publishLoop, and how many batches may wait
// for it: with the message being published, at most outboxDepth+2 batches
// of at most handoffBytes (or of one message, if larger) are held beyond
// the publisher's flow control.
const (
	handoffCount = 256
	handoffBytes = 256 << 10
	outboxDepth  = 4
)

// publishLoop publishes the outbox's messages in the order they were sent
// and queues their results for the ack loop, until the outbox is closed.
func (r *reader) publishLoop(ctx context.Context) {
	for batch := range r.outbox {
		for _, o := range batch {
			res := r.pub.Publish(ctx, o.msg)
			r.results <- pending{res: res, key: o.msg.OrderingKey, tx: o.tx}
		}
	}
}

// ackLoop waits for each publish in the order they were made and
// acknowledges it to the tracker; a failure resumes the paused key and marks
// the tracker failed, which ends the session.
func (r *reader) ackLoop(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	for p := range r.results {
		_, err := p.res.Get(ctx)
		if err != nil {
			r.pub.ResumePublish(p.key)
			p.tx.Ack(&publishError{key: p.key, err: err})
			continue
		}
		r.c.published.Add(1)
		p.tx.Ack(nil)
	}
}

func (r *reader) pluginArgs() ([]string, error) {
	// server_version is reported at connection start, e.g. "15.18 (Debian 15.18-0+deb12u1)".
	version := r.conn.ParameterStatus("server_version")
	args := []string{"proto_version '1'", "publication_names '" + escapeLiteral(r.c.cfg.Publication) + "'"}
	var major int
	if _, err := fmt.Sscanf(version, "%d", &major); err == nil && major >= 14 {
		// Streaming sends large in-progress transactions in chunks, spilled to disk here until commit.
		// messages: logical decoding messages, for markers (see logicalMessage).
		args = []string{"proto_version '2'", "publication_names '" + escapeLiteral(r.c.cfg.Publication) + "'", "streaming 'on'", "messages 'true'"}
	}
	return args, nil
}

func escapeLiteral(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, '\'')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func (r *reader) stream(ctx context.Context, start pglogrepl.LSN) error {
	r.relations = map[uint32]*Relation{}
	args, err := r.pluginArgs()
	if err != nil {
		return err
	}
	if err := pglogrepl.StartReplication(ctx, r.conn, r.c.cfg.Slot, start, pglogrepl.StartReplicationOptions{PluginArgs: args}); err != nil {
		return fmt.Errorf("starting replication from %s: %w", start, err)
	}
	r.c.log.Info("capture streaming", "slot", r.c.cfg.Slot, "from", start.String(), "args", args)
	r.lastStatus = time.Now()
	// Each receive waits at most until the next status is due. The wait is
	// bounded by the connection's read deadline rather than by a context
	// per message (pgconn watches each such context with a goroutine of
	// its own); the session's context still ends a wait at once, by moving
	// the deadline to now.
	nc := r.conn.Conn()
	stop := context.AfterFunc(ctx, func() { _ = nc.SetReadDeadline(time.Now()) })
	defer stop()
	var readDeadline time.Time
	for {
		if ferr := r.failed(); ferr != nil {
			return ferr
		}
		if err := r.keepAlive(ctx); err != nil {
			return err
		}
		if deadline := r.lastStatus.Add(r.statusInterval()); !deadline.Equal(readDeadline) {
			if err := nc.SetReadDeadline(deadline); err != nil {
				return fmt.Errorf("setting the replication connection's read deadline: %w", err)
			}
			readDeadline = deadline
		}
		// After the deadline is set: a cancellation from here on moves it.
		if ctx.Err() != nil {
			return ctx.Err()
		}
		msg, err := r.conn.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("receiving replication message: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("replication stream: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CopyData:
			if err := r.copyData(ctx, m.Data); err != nil {
				return err
			}
		}
	}
}

func (r *reader) failed() error {
	_, err := r.tracker.Confirmed()
	return err
}

func (r *reader) copyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		pkm, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("parsing keepalive: %w", err)
		}
		r.serverEnd = pkm.ServerWALEnd
		// Quiet publication, busy database: with nothing in flight the
		// keepalive's position is safe to confirm, so the slot never pins WAL.
		if r.tx == nil && len(r.spills) == 0 && !r.inStream {
			r.tracker.AdvanceIdle(pkm.ServerWALEnd)
		}
		if pkm.ReplyRequested {
			return r.sendStatus(ctx)
		}
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("parsing XLogData: %w", err)
		}
		if end := xld.WALStart + pglogrepl.LSN(len(xld.WALData)); end > r.received {
			r.received = end
		}
		return r.walMessage(ctx, xld.WALStart, xld.WALData)
	}
	return nil
}

func (r *reader) walMessage(ctx context.Context, walStart pglogrepl.LSN, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	if r.inStream {
		switch pglogrepl.MessageType(data[0]) {
		case pglogrepl.MessageTypeStreamStop:
			r.inStream = false
			return nil
		case pglogrepl.MessageTypeStreamStart, pglogrepl.MessageTypeStreamCommit, pglogrepl.MessageTypeStreamAbort:
			// handled below
		default:
			// A change of an in-progress transaction: keep it on disk until it commits.
			xid, err := streamedXid(data)
			if err != nil {
				return err
			}
			return r.spills[r.streamXid].append(xid, walStart, data)
		}
	}
	if isRowMessage(data[0]) {
		return r.rowMessage(ctx, walStart, data, false)
	}
	msg, err := pglogrepl.ParseV2(data, false)
	if err != nil {
		return fmt.Errorf("parsing pgoutput message %q at %s: %w", data[0], walStart, err)
	}
	switch m := msg.(type) {
	case *pglogrepl.BeginMessage:
		r.begin(m.FinalLSN, m.Xid, m.CommitTime)
	case *pglogrepl.CommitMessage:
		return r.commit(m.TransactionEndLSN)
	case *pglogrepl.StreamStartMessageV2:
		r.inStream, r.streamXid = true, m.Xid
		if _, ok := r.spills[m.Xid]; !ok {
			s, err := openSpill(r.c.cfg.SpillDir, m.Xid)
			if err != nil {
				return err
			}
			r.spills[m.Xid] = s
		}
	case *pglogrepl.StreamStopMessageV2:
		r.inStream = false
	case *pglogrepl.StreamAbortMessageV2:
		s, ok := r.spills[m.Xid]
		if !ok {
			return nil
		}
		if m.SubXid != m.Xid {
			s.abortSub(m.SubXid)
			return nil
		}
		delete(r.spills, m.Xid)
		return s.remove()
	case *pglogrepl.StreamCommitMessageV2:
		return r.streamCommit(ctx, m)
	default:
		return r.change(ctx, walStart, msg)
	}
	return nil
}

// streamedXid reads the (sub)transaction id that follows the message type
// byte of a change sent inside a stream block.
func streamedXid(data []byte) (uint32, error) {
	if len(data) < 5 {
		return 0, fmt.Errorf("streamed pgoutput message %q too short: %d bytes", data[0], len(data))
	}
	return uint32(data[1])<<24 | uint32(data[2])<<16 | uint32(data[3])<<8 | uint32(data[4]), nil
}

func (r *reader) begin(commitLSN pglogrepl.LSN, xid uint32, commitTime time.Time) {
	r.tx = &txState{commitLSN: commitLSN, xid: xid, commitTime: commitTime, ack: r.tracker.Begin()}
}

func (r *reader) commit(end pglogrepl.LSN) error {
	if r.tx == nil {
		return errors.New("commit without a transaction")
	}
	r.tx.ack.Seal(end, r.tx.commitTime)
	r.tx = nil
	r.handoff()
	return nil
}

// streamCommit replays a committed streamed transaction from its spill file.
func (r *reader) streamCommit(ctx context.Context, m *pglogrepl.StreamCommitMessageV2) error {
	s, ok := r.spills[m.Xid]
	if !ok {
		return fmt.Errorf("stream commit of transaction %d that was never streamed", m.Xid)
	}
	delete(r.spills, m.Xid)
	defer s.remove()
	r.begin(m.CommitLSN, m.Xid, m.CommitTime)
	err := s.replay(func(walStart pglogrepl.LSN, data []byte) error {
		if len(data) > 0 && isRowMessage(data[0]) {
			if err := r.rowMessage(ctx, walStart, data, true); err != nil {
				return err
			}
			return r.keepAlive(ctx)
		}
		msg, err := pglogrepl.ParseV2(data, true)
		if err != nil {
			return fmt.Errorf("parsing spilled pgoutput message %q of transaction %d: %w", data[0], m.Xid, err)
		}
		if err := r.change(ctx, walStart, msg); err != nil {
			return err
		}
		// Publishing a big transaction outlasts wal_sender_timeout: report
		// meanwhile, or Postgres ends the session and it starts over.
		return r.keepAlive(ctx)
	})
	if err != nil {
		return err
	}
	return r.commit(m.TransactionEndLSN)
}

// change handles a message inside a transaction: relation updates and row
// changes.
func (r *reader) change(ctx context.Context, walStart pglogrepl.LSN, msg pglogrepl.Message) error {
	switch m := msg.(type) {
	case *pglogrepl.RelationMessageV2:
		return r.relation(ctx, &m.RelationMessage)
	case *pglogrepl.RelationMessage:
		return r.relation(ctx, m)
	case *pglogrepl.TruncateMessageV2:
		for _, id := range m.RelationIDs {
			if err := r.truncate(ctx, walStart, id); err != nil {
				return err
			}
		}
	case *pglogrepl.LogicalDecodingMessageV2:
		return r.logicalMessage(ctx, &m.LogicalDecodingMessage)
	case *pglogrepl.LogicalDecodingMessage:
		return r.logicalMessage(ctx, m)
	}
	// Type and origin messages carry no row change.
	return nil
}

func (r *reader) relation(ctx context.Context, m *pglogrepl.RelationMessage) error {
	r.relations[m.RelationID] = newRelation(m)
	return r.enc.relation(ctx, m)
}

// rowMessage publishes the change of an Insert, Update or Delete message.
// The change and its tuples live in the reader's scratch storage, valid
// until the next row message: nothing keeps them past publish.
func (r *reader) rowMessage(ctx context.Context, walStart pglogrepl.LSN, data []byte, streamed bool) error {
	m := &r.rowMsg
	if err := m.Decode(data, streamed); err != nil {
		return fmt.Errorf("parsing pgoutput message at %s: %w", walStart, err)
	}
	rel, ok := r.relations[m.RelationID]
	if !ok {
		return fmt.Errorf("change to relation %d before its Relation message", m.RelationID)
	}
	op := OpInsert
	switch m.Type {
	case pglogrepl.MessageTypeUpdate:
		op = OpUpdate
	case pglogrepl.MessageTypeDelete:
		op = OpDelete
	}
	r.ch = Change{Op: op, Relation: rel, LSN: walStart, Before: m.Old, After: m.New}
	return r.publish(ctx, &r.ch)
}

// truncate publishes one truncate event on every ordering key of the table,
// so it is ordered against every row's changes; the copies share commit LSN
// and seq, and consumers apply it once.
func (r *reader) truncate(ctx context.Context, walStart pglogrepl.LSN, relID uint32) error {
	rel, ok := r.relations[relID]
	if !ok {
		return fmt.Errorf("truncate of relation %d before its Relation message", relID)
	}
	tx := r.tx
	if tx == nil {
		return errors.New("change outside a transaction")
	}
	ch := &Change{Op: OpTruncate, Relation: rel, LSN: walStart, CommitLSN: tx.commitLSN, Xid: tx.xid, CommitTime: tx.commitTime, Seq: tx.seq}
	tx.seq++
	msg, err := r.enc.message(ctx, ch)
	if err != nil || msg == nil {
		return err
	}
	for b := 0; b < r.c.cfg.OrderingBuckets; b++ {
		m := *msg
		m.OrderingKey = OrderingKey(rel, b)
		r.send(&m)
	}
	return nil
}

func (r *reader) publish(ctx context.Context, ch *Change) error {
	tx := r.tx
	if tx == nil {
		return errors.New("change outside a transaction")
	}
	ch.CommitLSN, ch.Xid, ch.CommitTime, ch.Seq = tx.commitLSN, tx.xid, tx.commitTime, tx.seq
	tx.seq++
	msg, err := r.enc.message(ctx, ch)
	if err != nil {
		return err
	}
	if msg == nil {
		r.c.dead.Add(1)
		return nil
	}
	r.send(msg)
	return nil
}

// send counts msg in its transaction's outstanding events and adds it to
// the batch for publishLoop; a full batch is handed over at once (blocking
// while publishLoop is behind, which blocks under flow control).
func (r *reader) send(msg *pubsub.Message) {
	r.tx.ack.Add(1)
	r.batch = append(r.batch, outgoing{msg: msg, tx: r.tx.ack})
	r.batchBytes += len(msg.Data)
	if len(r.batch) >= handoffCount || r.batchBytes >= handoffBytes {
		r.handoff()
	}
}

// handoff passes the batch being filled to publishLoop.
func (r *reader) handoff() {
	if len(r.batch) == 0 {
		return
	}
	r.outbox <- r.batch
	r.batch, r.batchBytes = make([]outgoing, 0, handoffCount), 0
}

func (r *reader) statusInterval() time.Duration { return min(time.Second, r.c.cfg.StandbyTimeout) }

// keepAlive sends a standby status when the last is a status interval old.
func (r *reader) keepAlive(ctx context.Context) error {
	if time.Since(r.lastStatus) < r.statusInterval() {
		return nil
	}
	return r.sendStatus(ctx)
}

// sendStatus reports the confirmed position as flushed (and the newest
// received as written) to Postgres.
func (r *reader) sendStatus(ctx context.Context) error {
	confirmed, _ := r.tracker.Confirmed()
	write := max(r.received, confirmed)
	err := pglogrepl.SendStandbyStatusUpdate(ctx, r.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: write, WALFlushPosition: confirmed, WALApplyPosition: confirmed,
	})
	if err != nil {
		return fmt.Errorf("sending standby status: %w", err)
	}
	r.c.confirmed.Store(uint64(confirmed))
	r.lastStatus = time.Now()
	return nil
}
