package memstore

import (
	"math"
	"time"
)

func timeFromSeconds(t float64) time.Time {
	sec, frac := math.Modf(t)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC()
}
