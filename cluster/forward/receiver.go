package forward

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// Deliverer hands forwarded messages to this node's sessions. The node
// implements it.
type Deliverer interface {
	// DeliverForwarded hands msgs, in order, to local sessions. It writes
	// them for persistent sessions and records highWater as the high-water
	// mark for senderSite in the same durable write before it returns, so
	// that a resend after a crash is recognised. It must not block on a
	// slow session. The Receiver calls it for one sender at a time.
	DeliverForwarded(senderSite string, msgs []*clusterpb.ForwardMessage, highWater uint64) error

	// ForwardHighWater returns the high-water mark last recorded for
	// senderSite, or 0.
	ForwardHighWater(senderSite string) (uint64, error)
}

// HelloCheck decides whether a stream may proceed, for example by
// comparing hello.SenderName with the name in the peer's TLS certificate.
// An error that carries a gRPC status ends the stream with that status;
// any other error ends it with codes.PermissionDenied.
type HelloCheck func(ctx context.Context, hello *clusterpb.ForwardHello) error

// Receiver is the receiving side of Forward streams. All methods are safe
// for concurrent use.
type Receiver struct {
	d     Deliverer
	log   *slog.Logger
	self  string // this node's site id
	check HelloCheck

	mu      sync.Mutex
	senders map[string]*senderState // by sender site id; guarded by mu
}

// senderState serializes the streams of one sender site, so that an old
// stream the sender has given up on cannot deliver beside its replacement.
type senderState struct {
	refs int // streams using it; guarded by Receiver.mu

	mu        sync.Mutex
	gen       uint64 // generation of the newest stream; guarded by mu
	highWater uint64 // guarded by mu; valid when loaded
	loaded    bool   // guarded by mu
}

// NewReceiver returns a Receiver that delivers to d on the node with site
// id selfSiteID. check may be nil to accept every hello that names
// selfSiteID. A nil logger means slog.Default().
func NewReceiver(d Deliverer, logger *slog.Logger, selfSiteID string, check HelloCheck) *Receiver {
	if logger == nil {
		logger = slog.Default()
	}
	return &Receiver{
		d:       d,
		log:     logger.With(keyComponent, componentName),
		self:    selfSiteID,
		check:   check,
		senders: make(map[string]*senderState),
	}
}

// Forward serves one Forward stream, the handler of the Peer service's
// Forward method. It returns codes.FailedPrecondition when the hello names
// another receiver site id, and ends the stream when DeliverForwarded
// fails, so that the sender resends. A newer stream from the same sender
// site supersedes this one, which then ends with codes.Aborted at its next
// request.
func (r *Receiver) Forward(st clusterpb.Peer_ForwardServer) error {
	ctx := st.Context()
	req, err := st.Recv()
	if err != nil {
		return err
	}
	hello := req.GetHello()
	if err := r.checkHello(ctx, hello); err != nil {
		r.log.Info("rejected a forward stream", keySender, hello.GetSenderName(), keySiteID, hello.GetSenderSiteId(), keyErr, err)
		return err
	}
	site := hello.SenderSiteId
	log := r.log.With(keySender, hello.SenderName, keySiteID, site)

	state := r.acquire(site)
	defer r.release(site, state)
	gen, highWater, err := state.start(r.d, site)
	if err != nil {
		log.Warn("read the forward high-water mark failed", keyErr, err)
		return status.Errorf(codes.Unavailable, "read forward high-water mark of site %s: %v", site, err)
	}
	if err := st.Send(&clusterpb.ForwardResponse{AckedSeq: highWater}); err != nil {
		return err
	}
	log.Info("forward stream accepted", keyHighWater, highWater)

	for {
		if len(req.Messages) > 0 {
			acked, err := r.deliver(state, gen, site, req.Messages)
			if err != nil {
				log.Info("forward stream ended", keyErr, err)
				return err
			}
			if err := st.Send(&clusterpb.ForwardResponse{AckedSeq: acked}); err != nil {
				return err
			}
		}

		req, err = st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if req.Hello != nil {
			return status.Error(codes.InvalidArgument, "forward: hello after the first request")
		}
	}
}

// checkHello validates the first request's hello.
func (r *Receiver) checkHello(ctx context.Context, hello *clusterpb.ForwardHello) error {
	if hello == nil {
		return status.Error(codes.InvalidArgument, "forward: the first request has no hello")
	}
	if hello.SenderSiteId == "" {
		return status.Error(codes.InvalidArgument, "forward: hello has no sender site id")
	}
	if hello.ReceiverSiteId != r.self {
		return status.Errorf(codes.FailedPrecondition,
			"forward: this node has site id %s, not %s: it restarted with a new data directory",
			r.self, hello.ReceiverSiteId)
	}
	if r.check == nil {
		return nil
	}
	if err := r.check(ctx, hello); err != nil {
		if _, ok := status.FromError(err); ok {
			return err
		}
		return status.Errorf(codes.PermissionDenied, "forward: %v", err)
	}
	return nil
}

func (r *Receiver) acquire(site string) *senderState {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.senders[site]
	if s == nil {
		s = new(senderState)
		r.senders[site] = s
	}
	s.refs++
	return s
}

func (r *Receiver) release(site string, s *senderState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.refs--
	if s.refs == 0 {
		delete(r.senders, site)
	}
}

// start makes the calling stream the newest of its sender and returns its
// generation and the high-water mark to send in the first response.
func (s *senderState) start(d Deliverer, site string) (uint64, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	if !s.loaded {
		hw, err := d.ForwardHighWater(site)
		if err != nil {
			return 0, 0, err
		}
		s.highWater, s.loaded = hw, true
	}
	return s.gen, s.highWater, nil
}

// deliver drops the messages at or below the high-water mark as
// duplicates, delivers the rest and returns the new high-water mark.
func (r *Receiver) deliver(s *senderState, gen uint64, site string, msgs []*clusterpb.ForwardMessage) (uint64, error) {
	for i := 1; i < len(msgs); i++ {
		if msgs[i].Seq <= msgs[i-1].Seq {
			return 0, status.Errorf(codes.InvalidArgument,
				"forward: sequence number %d follows %d in one request, expected increasing numbers",
				msgs[i].Seq, msgs[i-1].Seq)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return 0, status.Error(codes.Aborted, "forward: a newer stream from the same sender replaced this one")
	}

	first := 0
	for first < len(msgs) && msgs[first].Seq <= s.highWater {
		first++
	}
	fresh := msgs[first:]
	if len(fresh) == 0 {
		return s.highWater, nil
	}
	highWater := fresh[len(fresh)-1].Seq
	if err := r.d.DeliverForwarded(site, fresh, highWater); err != nil {
		// The write may or may not have happened, so the next stream
		// reads the mark again.
		s.loaded = false
		return 0, status.Errorf(codes.Unavailable, "forward: deliver messages up to %d: %v", highWater, err)
	}
	s.highWater = highWater
	return highWater, nil
}
