package congestion

import "time"

// AckSampler is a controller that also takes a delay sample for every ACK
// of new data, before OnAck, as Linux hands its congestion controls one
// through their pkts_acked hook. rtt is the time since the newest segment
// the ACK acknowledged was sent, 0 when there is none (the ACK covered
// retransmitted data: Karn's rule); sndUna and sndNxt are SND.UNA after
// the ACK and SND.NXT, for controllers that count round trips in
// sequence space.
type AckSampler interface {
	OnAckSample(now, rtt time.Duration, sndUna, sndNxt uint32)
}

// TxStartObserver is a controller that wants to know when data is sent
// with nothing in flight, as Linux tells its congestion controls with
// CA_EVENT_TX_START: now, and lastSend, when data was last sent before.
type TxStartObserver interface {
	OnTxStart(now, lastSend time.Duration)
}
