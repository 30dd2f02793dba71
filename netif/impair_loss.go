package netif

import "math/rand/v2"

// lossModel decides which packets are lost.
//
// Without a burst length, losses are independent: each packet is lost with
// probability p (Bernoulli), which makes runs of losses short (mean 1/(1-p)).
// Real links lose in bursts (a fading radio, an overflowing queue upstream),
// and TCP's recovery behaves very differently when three segments in a row
// go, so burst=N selects a two-state Gilbert-Elliott chain instead:
//
//   - in the good state nothing is lost, in the bad state everything is;
//   - bad → good with probability r = 1/N per packet, so a burst is
//     geometric with mean N packets;
//   - good → bad with probability q = p·r/(1-p), so that the chain spends a
//     fraction q/(q+r) = p of packets in the bad state: the average loss stays p.
//
// q ≤ 1 requires N ≥ p/(1-p); ParseImpairSpec rejects shorter bursts.
// Every packet takes exactly one draw from the model's own stream, lost or
// not, so the decisions for packet k depend only on the seed and k.
type lossModel struct {
	rng      *rand.Rand
	lossProb float64 // independent model: probability a packet is lost
	bursty   bool    // Gilbert-Elliott instead of independent
	goodBad  float64 // q: probability good → bad, per packet
	badGood  float64 // r: probability bad → good, per packet
	bad      bool    // current state; the chain starts good
}

func newLossModel(rng *rand.Rand, lossPercent, burstPackets float64) *lossModel {
	m := &lossModel{rng: rng, lossProb: lossPercent / 100}
	if burstPackets > 0 && m.lossProb < 1 {
		m.bursty = true
		m.badGood = 1 / burstPackets
		m.goodBad = min(1, m.lossProb*m.badGood/(1-m.lossProb))
	}
	return m
}

// lose steps the model by one packet and reports whether it is lost.
func (m *lossModel) lose() bool {
	u := m.rng.Float64()
	if !m.bursty {
		return u < m.lossProb
	}
	if m.bad {
		m.bad = u >= m.badGood
	} else {
		m.bad = u < m.goodBad
	}
	return m.bad
}

// chance is an independent yes/no decision with its own stream: duplicate
// or reorder. A nil *chance never says yes and draws nothing.
type chance struct {
	rng  *rand.Rand
	prob float64
}

func newChance(rng *rand.Rand, percent float64) *chance {
	if percent <= 0 {
		return nil
	}
	return &chance{rng: rng, prob: percent / 100}
}

// draw takes one value from the stream and reports whether it says yes.
func (c *chance) draw() bool { return c != nil && c.rng.Float64() < c.prob }
