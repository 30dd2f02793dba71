package tcpcore

import (
	"time"

	"tunstack/congestion"
)

// txStart tells a controller that wants it (congestion.TxStartObserver)
// that a data segment goes out with nothing outstanding, before lastSend
// moves: Linux's tcp_event_data_sent raises CA_EVENT_TX_START when it
// sends with no packet in flight, with lsndtime still the previous send.
func (c *Conn) txStart(now Time) {
	if c.sndUna != c.sndMax || !c.hasCC() {
		return
	}
	if o, ok := c.ccw().(congestion.TxStartObserver); ok {
		o.OnTxStart(time.Duration(now), time.Duration(c.lastSend))
	}
}
