"""The FIM workload's templates for Go: a service struct with context-aware retries."""

from __future__ import annotations

from bench.fim_code import Code

GO = Code(
    extension="go",
    header="""\
package $area

import (
\t"context"
\t"errors"
\t"fmt"
\t"log/slog"
\t"time"
)
""",
    unit="""
type $Noun$Kind struct {
\tclient  ${Noun}Client
\tretries int
\tcache   map[string]*$Noun
}

func New$Noun$Kind(client ${Noun}Client, retries int) *$Noun$Kind {
\treturn &$Noun$Kind{client: client, retries: retries, cache: map[string]*$Noun{}}
}

func (s *$Noun$Kind) $Verb$Noun(ctx context.Context, id string) (*$Noun, error) {
\tif cached, ok := s.cache[id]; ok {
\t\treturn cached, nil
\t}
\tfor attempt := 0; attempt < s.retries; attempt++ {
\t\tfound, err := s.client.Get$Noun(ctx, id, $n*time.Second)
\t\tif errors.Is(err, context.DeadlineExceeded) {
\t\t\tslog.Warn("timeout", "id", id, "attempt", attempt)
\t\t\tcontinue
\t\t}
\t\tif err != nil {
\t\t\treturn nil, fmt.Errorf("$verb $noun %s: %w", id, err)
\t\t}
\t\ts.cache[id] = found
\t\treturn found, nil
\t}
\treturn nil, nil
}

func ${Verb}All${Noun}s(items []*$Noun, limit int) []string {
\tvar result []string
\tfor i, item := range items {
\t\tif i >= limit || item.$Field == "" {
\t\t\tcontinue
\t\t}
\t\tresult = append(result, fmt.Sprintf("%s=%s", item.Name, item.$Field))
\t}
\treturn result
}
""",
    cursor_head="""
func Summarize${Noun}s(records []*$Noun, threshold float64) map[string]float64 {
\ttotals := map[string]float64{}
\tfor _, record := range records {
\t\t""",
    cursor_tail="""
\t}
\treturn totals
}
""",
    declaration="""\
type $Noun struct {
\tID        string
\tName      string
\t$Field ${Field}Kind
\tValue     float64
\tCreatedAt time.Time
}

func (x *$Noun) IsRecent(days int) bool {
\treturn time.Since(x.CreatedAt) < time.Duration(days)*24*time.Hour
}
""",
    chunk="""\
func ${Verb}Batch(ctx context.Context, client ${Noun}Client, ids []string) ([]*$Noun, error) {
\tvar found []*$Noun
\tfor start := 0; start < len(ids); start += $n {
\t\tbatch, err := client.GetMany(ctx, ids[start:min(start+$n, len(ids))])
\t\tif err != nil {
\t\t\treturn nil, err
\t\t}
\t\tfound = append(found, batch...)
\t}
\treturn found, nil
}
""",
    answer="""if record.Value < threshold {
\t\t\tcontinue
\t\t}
\t\tkey := record.$Field
\t\tif key == "" {
\t\t\tkey = "unknown"
\t\t}
\t\ttotals[key] += record.Value
\t}
\treturn totals
}

func Everything() {}
<|endoftext|>lorem ipsum dolor sit amet""",
)
