package ordq

// TaskState is the state of a task as reported by Task.
type TaskState string

// The task states.
const (
	StateReady     TaskState = "ready"
	StateLeased    TaskState = "leased"
	StateRetryWait TaskState = "retry_wait" // a due retry shows this until claimed
	StateDone      TaskState = "done"
	StateDead      TaskState = "dead"
)

// Task is a task's full record. Times are ms since the Unix epoch (0 =
// not yet). Payload and Result are nil when absent or pruned.
type Task struct {
	Version        int               `json:"v"`                // record version
	ID             string            `json:"id"`               // task id, 32 hex characters
	Queue          string            `json:"queue"`            // queue name
	Key            string            `json:"key"`              // task key
	Shard          uint32            `json:"shard"`            // shard of the key
	Offset         uint64            `json:"offset"`           // queue-wide offset
	Priority       int32             `json:"priority"`         // higher runs first
	Attempt        uint32            `json:"attempt"`          // attempts made so far
	MaxAttempts    uint32            `json:"max_attempts"`     // attempts allowed
	NotBefore      uint64            `json:"not_before"`       // earliest run time, ms
	IdempotencyKey *string           `json:"idempotency_key"`  // nil when none
	Headers        map[string]string `json:"headers"`          // header name to value
	State          TaskState         `json:"state"`            // current state
	EnqueuedAt     uint64            `json:"enqueued_at"`      // ms since the epoch
	LeasedAt       uint64            `json:"leased_at"`        // last lease, ms (0 = never)
	StartedAt      uint64            `json:"started_at"`       // last Start, ms (0 = not started)
	CommittedAt    uint64            `json:"committed_at"`     // completion or dead-lettering, ms (0 = not yet)
	LeaseExpiresAt uint64            `json:"lease_expires_at"` // current lease expiry, ms (0 = none)
	Fence          uint64            `json:"fence"`            // fencing value of the last lease (0 = never leased)
	Worker         *string           `json:"worker"`           // worker of the last lease/start/commit (nil = none)
	Payload        []byte            `json:"payload"`          // nil when pruned
	Result         []byte            `json:"result"`           // nil when none or pruned
	RedrivenFrom   *uint64           `json:"redriven_from"`    // offset this task was redriven from (NEW_OFFSET)
	RedrivenTo     *uint64           `json:"redriven_to"`      // offset this task was redriven to (NEW_OFFSET)
}

// FaultKind says how an attempt ended badly.
type FaultKind string

// The fault kinds.
const (
	FaultFailed  FaultKind = "failed"  // the worker called Fail
	FaultExpired FaultKind = "expired" // the lease ran out
)

// Fault is one failed attempt of a task.
type Fault struct {
	At        uint64    `json:"at"`        // ms since the epoch
	Attempt   uint32    `json:"attempt"`   // the attempt that failed
	Error     string    `json:"error"`     // error text (empty for an expiry)
	Kind      FaultKind `json:"kind"`      // failed or expired
	Retryable bool      `json:"retryable"` // as passed to Fail
	Worker    string    `json:"worker"`    // worker holding the lease
}

// DeadLetter is a held dead letter with its fault history, oldest first.
type DeadLetter struct {
	Task   Task    `json:"task"`   // the dead task
	Faults []Fault `json:"faults"` // its faults, oldest first
}

// ShardStats are one shard's counts.
type ShardStats struct {
	Pending  uint64 `json:"pending"`   // tasks waiting (ready, delayed or in retry wait)
	Eligible uint64 `json:"eligible"`  // lane heads claimable right now
	InFlight uint64 `json:"in_flight"` // leased tasks
}

// Totals are a queue's lifetime counters.
type Totals struct {
	Enqueued     uint64 `json:"enqueued"`      // includes NEW_OFFSET redrives, never duplicates
	Completed    uint64 `json:"completed"`     // completions
	Failed       uint64 `json:"failed"`        // Fail calls
	Retried      uint64 `json:"retried"`       // retries scheduled
	DeadLettered uint64 `json:"dead_lettered"` // tasks dead-lettered
	LeaseExpired uint64 `json:"lease_expired"` // leases that ran out
	Released     uint64 `json:"released"`      // Release calls
	Redriven     uint64 `json:"redriven"`      // redrives
	Purged       uint64 `json:"purged"`        // dead letters purged
	Rollbacks    uint64 `json:"rollbacks"`     // Complete/Fail calls refused by fencing (lease lost)
}

// QueueStats are a queue's current counts and lifetime totals.
type QueueStats struct {
	Queue              string       `json:"queue"`                 // queue name
	Ready              uint64       `json:"ready"`                 // tasks ready to claim
	Leased             uint64       `json:"leased"`                // tasks leased
	RetryWait          uint64       `json:"retry_wait"`            // tasks waiting for a retry
	Done               uint64       `json:"done"`                  // tasks done
	Dead               uint64       `json:"dead"`                  // dead letters held
	Unfinished         uint64       `json:"unfinished"`            // ready + leased + retry_wait: 0 when drained
	OldestPendingAgeMs uint64       `json:"oldest_pending_age_ms"` // age of the oldest unfinished task, ms (0 if none)
	NextOffset         uint64       `json:"next_offset"`           // offset of the next enqueue
	Shards             []ShardStats `json:"shards"`                // indexed by shard
	Totals             Totals       `json:"totals"`                // lifetime counters
}

// QueueInfo is a queue's stored configuration.
type QueueInfo struct {
	ID        uint32 `json:"id"`         // internal queue id
	Name      string `json:"name"`       // queue name
	CreatedAt uint64 `json:"created_at"` // ms since the epoch
	// Config is the stored QueueConfig.
	Config struct {
		Shards      uint32 `json:"shards"`
		Ordering    string `json:"ordering"` // key|shard|global|none
		MaxAttempts uint32 `json:"max_attempts"`
		DLQPolicy   string `json:"dlq_policy"` // skip|block
		LeaseMs     uint64 `json:"lease_ms"`
		Backoff     struct {
			InitialMs  uint64  `json:"initial_ms"`
			MaxMs      uint64  `json:"max_ms"`
			Multiplier float64 `json:"multiplier"`
			Jitter     float64 `json:"jitter"`
		} `json:"backoff"`
	} `json:"config"`
}
