package conformance

import "fmt"

// CallOut holds what a call stored in its arguments besides the integers
// of CallResult.OutInt.
type CallOut struct {
	// Events are epoll_wait's events, in order (HasEvents: the call was an
	// epoll_wait that returned).
	Events    []EpollEvent
	HasEvents bool
	// MsgFlags is recvmsg's msg_flags.
	MsgFlags    int64
	HasMsgFlags bool
}

// checkCallOut compares what the call stored with what the script wrote:
// the first event of epoll_wait (as packetdrill, which checks only the
// first) and recvmsg's msg_flags. It returns what differs, and the actual
// value, or "".
func checkCallOut(sc *Syscall, res CallResult) (msg, actual string) {
	switch {
	case sc.Name == "epoll_wait" && res.Out.HasEvents && len(sc.Args) > 1:
		events, form, data, err := EpollArg(sc.Args[1])
		if err != nil {
			return err.Error(), ""
		}
		var got EpollEvent
		if len(res.Out.Events) > 0 {
			got = res.Out.Events[0]
		} else if form == "fd" {
			return fmt.Sprintf("epoll_wait returned no event, expected one for fd %d", data), "no event"
		}
		gotData := got.Data
		if form == "u32" {
			gotData = uint64(uint32(gotData))
		}
		act := fmt.Sprintf("{events=%#x, %s=%d}", got.Events, form, gotData)
		if got.Events != events {
			return fmt.Sprintf("epoll_wait's first event has events %#x, expected %#x", got.Events, events), act
		}
		if gotData != data {
			return fmt.Sprintf("epoll_wait's first event has %s=%d, expected %d", form, gotData, data), act
		}
	case sc.Name == "recvmsg" && res.Out.HasMsgFlags && len(sc.Args) > 1:
		m, err := MsghdrValue(sc.Args[1])
		if err != nil {
			return err.Error(), ""
		}
		if m.Flags.Kind == ExprEllipsis {
			return "", ""
		}
		want, err := IntValue(m.Flags)
		if err != nil {
			return "msg_flags: " + err.Error(), ""
		}
		if want != res.Out.MsgFlags {
			return fmt.Sprintf("recvmsg's msg_flags are %#x, expected %#x", res.Out.MsgFlags, want), fmt.Sprintf("msg_flags=%#x", res.Out.MsgFlags)
		}
	}
	return "", ""
}
