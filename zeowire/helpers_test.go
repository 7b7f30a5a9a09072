package zeowire

import "time"

func timeUnix(sec int64) time.Time { return time.Unix(sec, 0).UTC() }
