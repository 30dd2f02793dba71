package policy

import (
	"strings"
	"testing"
	"time"
)

func TestProfilesValidate(t *testing.T) {
	for _, n := range Names() {
		p, err := ByName(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Validate(); err != nil {
			t.Errorf("profile %s: %v", n, err)
		}
		if p.Name != n {
			t.Errorf("profile %s names itself %q", n, p.Name)
		}
	}
}

// The linux profile carries Linux 6.x's defaults; the rfc profile the
// RFCs' own values where they differ.
func TestLinuxAndRFCValues(t *testing.T) {
	l, r := Linux(), RFC()
	if l.RTOMin != 200*time.Millisecond || r.RTOMin != time.Second {
		t.Errorf("RTO minimum linux %v rfc %v", l.RTOMin, r.RTOMin)
	}
	if l.SynAckRetries != 5 || l.SynRetries != 6 || l.Retries2 != 15 {
		t.Errorf("linux retries %d/%d/%d", l.SynRetries, l.SynAckRetries, l.Retries2)
	}
	if l.TimeWaitLen != 60*time.Second || r.TimeWaitLen != 2*r.MSL {
		t.Errorf("TIME-WAIT linux %v rfc %v (MSL %v)", l.TimeWaitLen, r.TimeWaitLen, r.MSL)
	}
	if l.InitialCwndSegments != 10 || r.InitialCwndSegments != 0 {
		t.Errorf("initial window linux %d rfc %d", l.InitialCwndSegments, r.InitialCwndSegments)
	}
}

func TestByNameRejectsUnknown(t *testing.T) {
	if _, err := ByName("bsd"); err == nil {
		t.Fatal("unknown profile accepted")
	}
}

func TestValidateRejectsBadValues(t *testing.T) {
	bad := []func(p *Profile){
		func(p *Profile) { p.RTOMin = 0 },
		func(p *Profile) { p.RTOMax = p.RTOMin / 2 },
		func(p *Profile) { p.Retries2 = 0 },
		func(p *Profile) { p.RcvBuf = p.RcvBufMax + 1 },
		func(p *Profile) { p.LocalPortMin, p.LocalPortMax = 100, 50 },
		func(p *Profile) { p.DelAckMin = p.DelAckMax + 1 },
	}
	for i, f := range bad {
		p := Linux()
		f(p)
		if p.Validate() == nil {
			t.Errorf("case %d: invalid profile accepted", i)
		}
	}
	// Clone is independent.
	a := Linux()
	b := a.Clone()
	b.RTOMin = time.Hour
	if a.RTOMin == time.Hour {
		t.Fatal("Clone shares state")
	}
}

// The textbook sender: slow start from one segment, Reno.
func TestClassicProfileStartsFromOneSegment(t *testing.T) {
	p, err := ByName("classic")
	if err != nil {
		t.Fatal(err)
	}
	if p.InitialCwndSegments != 1 || p.Congestion != "reno" || p.Validate() != nil {
		t.Fatalf("classic: IW %d segments, congestion %q, validate %v; want 1, reno, valid", p.InitialCwndSegments, p.Congestion, p.Validate())
	}
}

// An unknown congestion controller is an error that lists the known ones,
// not a silent fall-back to Reno; every profile names a known one.
func TestValidateRejectsUnknownCongestionController(t *testing.T) {
	p := Linux()
	p.Congestion = "bbr"
	err := p.Validate()
	if err == nil || !strings.Contains(err.Error(), `"bbr"`) || !strings.Contains(err.Error(), "cubic") {
		t.Fatalf("Validate = %v; want an error naming bbr and the known controllers", err)
	}
	for _, name := range Names() {
		p, _ := ByName(name)
		if err := p.Validate(); err != nil {
			t.Errorf("profile %s: %v", name, err)
		}
	}
}
