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
	// OptVal is what getsockopt stored for an option whose value is a
	// buffer (TCP_CONGESTION's name); its length is the optlen returned.
	OptVal    []byte
	HasOptVal bool
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
	case sc.Name == "getsockopt" && res.Out.HasOptVal && len(sc.Args) == 5:
		return checkOptVal(sc, res.Out.OptVal)
	}
	return "", ""
}

// checkOptVal compares a buffer getsockopt stored with the script, as
// packetdrill does: the optlen returned must be the one written, and a
// "string" value must be exactly optlen bytes and equal what was stored.
func checkOptVal(sc *Syscall, got []byte) (msg, actual string) {
	want, err := PointerInt(sc.Args[4])
	if err != nil {
		return "getsockopt optlen: " + err.Error(), ""
	}
	act := fmt.Sprintf("%q, [%d]", got, len(got))
	if int64(len(got)) != want {
		return fmt.Sprintf("getsockopt's optlen is %d, expected %d", len(got), want), act
	}
	v := sc.Args[3]
	if v.Kind != ExprString {
		return "", ""
	}
	if int64(len(v.Name)) != want {
		return fmt.Sprintf("getsockopt: the expected value %q is %d bytes, not the optlen %d", v.Name, len(v.Name), want), act
	}
	if string(got) != v.Name {
		return fmt.Sprintf("getsockopt stored %q, expected %q", got, v.Name), act
	}
	return "", ""
}
