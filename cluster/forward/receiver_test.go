package forward

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/starling-mqtt/starling/proto/clusterpb"
	"github.com/starling-mqtt/starling/storage"
)

// openStream opens a raw Forward stream to addr and sends hello.
func openStream(t *testing.T, addr string, hello *clusterpb.ForwardHello) clusterpb.Peer_ForwardClient {
	t.Helper()
	client, err := newDialer(t).dial(context.Background(), Peer{Addr: addr})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	st, err := client.Forward(ctx)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	if err := st.Send(&clusterpb.ForwardRequest{Hello: hello}); err != nil {
		t.Fatalf("send hello: %v", err)
	}
	return st
}

func validHello() *clusterpb.ForwardHello {
	return &clusterpb.ForwardHello{SenderName: "node-a", SenderSiteId: senderSite, ReceiverSiteId: receiverSite}
}

func recvAck(t *testing.T, st clusterpb.Peer_ForwardClient) uint64 {
	t.Helper()
	resp, err := st.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	return resp.AckedSeq
}

func sendSeqs(t *testing.T, st clusterpb.Peer_ForwardClient, seqs ...uint64) {
	t.Helper()
	req := &clusterpb.ForwardRequest{}
	for _, seq := range seqs {
		req.Messages = append(req.Messages, &clusterpb.ForwardMessage{Seq: seq, OriginId: seq, Qos: 1})
	}
	if err := st.Send(req); err != nil {
		t.Fatalf("Send: %v", err)
	}
}

func deliveredSeqs(d *fakeDeliverer) []uint64 {
	var seqs []uint64
	for _, m := range d.messages() {
		seqs = append(seqs, m.Seq)
	}
	return seqs
}

func TestReceiver_DropsDuplicates(t *testing.T) {
	d := &fakeDeliverer{store: openStore(t, t.TempDir(), storage.DurabilityRelaxed)}
	_, addr := startReceiver(t, "127.0.0.1:0", receiverSite, d, discard)

	st := openStream(t, addr, validHello())
	if hw := recvAck(t, st); hw != 0 {
		t.Fatalf("first ack = %d, want 0 from a new receiver", hw)
	}
	sendSeqs(t, st, 1, 2, 5)
	if got := recvAck(t, st); got != 5 {
		t.Errorf("ack = %d, want 5", got)
	}
	sendSeqs(t, st, 2, 5, 6)
	if got := recvAck(t, st); got != 6 {
		t.Errorf("ack after a partial resend = %d, want 6", got)
	}
	sendSeqs(t, st, 3, 4)
	if got := recvAck(t, st); got != 6 {
		t.Errorf("ack after duplicates only = %d, want 6", got)
	}
	if got := deliveredSeqs(d); !slices.Equal(got, []uint64{1, 2, 5, 6}) {
		t.Errorf("delivered %v, want [1 2 5 6]", got)
	}
	if err := st.CloseSend(); err != nil {
		t.Fatalf("CloseSend: %v", err)
	}
	if _, err := st.Recv(); err == nil {
		t.Fatal("Recv after CloseSend returned a response, want the end of the stream")
	}

	// A new stream starts from the persisted high-water mark.
	st = openStream(t, addr, validHello())
	if hw := recvAck(t, st); hw != 6 {
		t.Errorf("first ack of a new stream = %d, want 6", hw)
	}
}

func TestReceiver_RejectsBadStreams(t *testing.T) {
	d := &fakeDeliverer{store: openStore(t, t.TempDir(), storage.DurabilityRelaxed)}
	_, addr := startReceiver(t, "127.0.0.1:0", receiverSite, d, discard)

	tests := []struct {
		name  string
		hello *clusterpb.ForwardHello
		then  func(t *testing.T, st clusterpb.Peer_ForwardClient)
		code  codes.Code
	}{
		{"no-hello", nil, nil, codes.InvalidArgument},
		{"no-sender-site", &clusterpb.ForwardHello{ReceiverSiteId: receiverSite}, nil, codes.InvalidArgument},
		{"other-receiver-site", &clusterpb.ForwardHello{SenderSiteId: senderSite, ReceiverSiteId: "site-old"}, nil, codes.FailedPrecondition},
		{"decreasing-seqs", validHello(), func(t *testing.T, st clusterpb.Peer_ForwardClient) {
			recvAck(t, st)
			sendSeqs(t, st, 9, 8)
		}, codes.InvalidArgument},
		{"second-hello", validHello(), func(t *testing.T, st clusterpb.Peer_ForwardClient) {
			recvAck(t, st)
			if err := st.Send(&clusterpb.ForwardRequest{Hello: validHello()}); err != nil {
				t.Fatalf("Send: %v", err)
			}
		}, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStream(t, addr, tt.hello)
			if tt.then != nil {
				tt.then(t, st)
			}
			_, err := st.Recv()
			if got := status.Code(err); got != tt.code {
				t.Errorf("stream ended with %v (%v), want %v", got, err, tt.code)
			}
		})
	}
	if n := d.count(); n != 0 {
		t.Errorf("%d messages delivered from rejected streams, want 0", n)
	}
}

func TestReceiver_HelloCheck(t *testing.T) {
	d := &fakeDeliverer{store: openStore(t, t.TempDir(), storage.DurabilityRelaxed)}
	r := NewReceiver(d, discard, receiverSite, func(_ context.Context, h *clusterpb.ForwardHello) error {
		if h.SenderName != "node-a" {
			return errors.New("certificate names node-a")
		}
		return nil
	})
	if err := r.checkHello(context.Background(), validHello()); err != nil {
		t.Errorf("checkHello of an accepted hello = %v, want nil", err)
	}
	h := validHello()
	h.SenderName = "node-x"
	if got := status.Code(r.checkHello(context.Background(), h)); got != codes.PermissionDenied {
		t.Errorf("checkHello of a rejected hello = %v, want PermissionDenied", got)
	}
}

func TestReceiver_NewerStreamSupersedes(t *testing.T) {
	d := &fakeDeliverer{store: openStore(t, t.TempDir(), storage.DurabilityRelaxed)}
	_, addr := startReceiver(t, "127.0.0.1:0", receiverSite, d, discard)

	old := openStream(t, addr, validHello())
	recvAck(t, old)
	sendSeqs(t, old, 1)
	recvAck(t, old)

	newer := openStream(t, addr, validHello())
	if hw := recvAck(t, newer); hw != 1 {
		t.Fatalf("first ack of the newer stream = %d, want 1", hw)
	}
	sendSeqs(t, old, 2)
	if _, err := old.Recv(); status.Code(err) != codes.Aborted {
		t.Errorf("old stream after a newer one = %v, want Aborted", err)
	}
	sendSeqs(t, newer, 2)
	if got := recvAck(t, newer); got != 2 {
		t.Errorf("ack on the newer stream = %d, want 2", got)
	}
	if got := deliveredSeqs(d); !slices.Equal(got, []uint64{1, 2}) {
		t.Errorf("delivered %v, want [1 2]", got)
	}
}

// failingDeliverer fails every delivery.
type failingDeliverer struct{}

func (failingDeliverer) DeliverForwarded(string, []*clusterpb.ForwardMessage, uint64) error {
	return errors.New("disk full")
}

func (failingDeliverer) ForwardHighWater(string) (uint64, error) { return 0, nil }

func TestReceiver_DeliverErrorEndsStream(t *testing.T) {
	_, addr := startReceiver(t, "127.0.0.1:0", receiverSite, failingDeliverer{}, discard)
	st := openStream(t, addr, validHello())
	recvAck(t, st)
	sendSeqs(t, st, 1)
	_, err := st.Recv()
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("stream after a failed delivery ended with %v, want Unavailable", err)
	}
	if want := "disk full"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %v does not name the cause %q", err, want)
	}
}
