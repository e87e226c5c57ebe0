package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// pipelineConfig configures publishPipelined.
type pipelineConfig struct {
	Addr     string
	ClientID string
	// Count is the number of messages; Build returns message i (0-based).
	Count int
	Build func(i int) publishSpec
	// Window is the maximum number of QoS 1 messages without PUBACK.
	Window int
	// Timeout bounds the whole run.
	Timeout time.Duration
	// AckSignal, when not nil, is closed once AckSignalAt PUBACKs arrived.
	AckSignal   chan struct{}
	AckSignalAt int
}

// pipelineResult reports what a pipelined publisher achieved.
type pipelineResult struct {
	// Acked lists the indexes of the messages that got a PUBACK, in the
	// order the PUBACKs arrived.
	Acked []int
	// Sent is the number of PUBLISH packets written to the socket.
	Sent int
	// Err is the error that ended the run early, nil if every message was
	// acknowledged.
	Err error
}

// publishPipelined publishes QoS 1 messages over a 3.1.1 connection with
// clean session 1, keeping up to Window of them in flight, and records
// exactly which ones the broker acknowledged. It returns when all are
// acknowledged, the connection fails (for example because the broker was
// killed), or the timeout passes. It is safe to call from any goroutine
// and does not use testing.T.
func publishPipelined(cfg pipelineConfig) pipelineResult {
	conn, err := net.DialTimeout("tcp", cfg.Addr, ioTimeout)
	if err != nil {
		return pipelineResult{Err: err}
	}
	defer conn.Close()
	deadline := time.Now().Add(cfg.Timeout)
	conn.SetDeadline(deadline)

	r := bufio.NewReader(conn)
	if _, err := conn.Write(v3(cfg.ClientID, true).encode()); err != nil {
		return pipelineResult{Err: err}
	}
	p, err := readPacket(r)
	if err != nil {
		return pipelineResult{Err: fmt.Errorf("read CONNACK: %w", err)}
	}
	if p.Type != typeConnack || len(p.Body) < 2 || p.Body[1] != 0 {
		return pipelineResult{Err: fmt.Errorf("CONNECT refused: %v", p)}
	}

	var (
		mu       sync.Mutex
		inflight = map[uint16]int{} // packet id -> message index
		acked    []int
	)
	slots := make(chan struct{}, cfg.Window)
	readerDone := make(chan error, 1)

	// The reader matches PUBACKs to messages and frees window slots.
	go func() {
		for {
			p, err := readPacket(r)
			if err != nil {
				readerDone <- err
				return
			}
			if p.Type != typePuback || len(p.Body) < 2 {
				readerDone <- fmt.Errorf("publisher received %v", p)
				return
			}
			id := uint16(p.Body[0])<<8 | uint16(p.Body[1])
			mu.Lock()
			idx, ok := inflight[id]
			delete(inflight, id)
			if ok {
				acked = append(acked, idx)
			}
			n := len(acked)
			done := n == cfg.Count
			mu.Unlock()
			if !ok {
				readerDone <- fmt.Errorf("PUBACK for packet id %d, which is not in flight", id)
				return
			}
			if cfg.AckSignal != nil && n == cfg.AckSignalAt {
				close(cfg.AckSignal)
			}
			<-slots
			if done {
				readerDone <- nil
				return
			}
		}
	}()

	sent := 0
	var nextID uint16
	w := bufio.NewWriter(conn)
	var runErr, readerErr error
	readerFinished := false
send:
	for i := 0; i < cfg.Count; i++ {
		select {
		case slots <- struct{}{}:
		case readerErr = <-readerDone:
			// The connection failed before every message was sent.
			readerFinished = true
			break send
		}
		nextID++
		if nextID == 0 {
			nextID = 1
		}
		spec := cfg.Build(i)
		spec.QoS, spec.ID = 1, nextID
		mu.Lock()
		inflight[nextID] = i
		mu.Unlock()
		w.Write(encodePublish(4, spec))
		// Flush when the window is full, at the end and every 16 messages,
		// so several PUBLISHes share one write.
		if len(slots) == cap(slots) || i == cfg.Count-1 || i%16 == 15 {
			if err := w.Flush(); err != nil {
				runErr = err
				break
			}
		}
		sent = i + 1
	}

	if !readerFinished {
		if runErr != nil {
			conn.Close() // unblock the reader
		}
		readerErr = <-readerDone
	}
	if runErr == nil {
		runErr = readerErr
	}
	if runErr == nil && len(acked) < cfg.Count {
		runErr = errors.New("reader finished before every message was acknowledged")
	}

	mu.Lock()
	defer mu.Unlock()
	return pipelineResult{Acked: append([]int(nil), acked...), Sent: sent, Err: runErr}
}
