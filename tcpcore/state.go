package tcpcore

// State is a connection state of RFC 9293 §3.3.2.
type State uint8

const (
	Closed State = iota
	Listen
	SynSent
	SynReceived
	Established
	FinWait1
	FinWait2
	CloseWait
	Closing
	LastAck
	TimeWait
)

var stateNames = [...]string{"CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED",
	"FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "UNKNOWN"
}

// Linux is the state's number in Linux's TCP_* enumeration, as TCP_INFO's
// tcpi_state and ss report it (1 TCP_ESTABLISHED ... 11 TCP_CLOSING;
// CLOSED is 7, TCP_CLOSE).
func (s State) Linux() uint8 {
	switch s {
	case Established:
		return 1
	case SynSent:
		return 2
	case SynReceived:
		return 3
	case FinWait1:
		return 4
	case FinWait2:
		return 5
	case TimeWait:
		return 6
	case CloseWait:
		return 8
	case LastAck:
		return 9
	case Listen:
		return 10
	case Closing:
		return 11
	}
	return 7 // TCP_CLOSE
}
