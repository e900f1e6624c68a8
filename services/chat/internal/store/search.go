package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/parley-chat/parley/services/chat/internal/app"
)

// ftsRules says which words the InnoDB full-text index holds: words shorter than the
// minimum or longer than the maximum token size, and stopwords, are not indexed and are
// searched with LIKE instead.
type ftsRules struct {
	minLen, maxLen int
	stopwords      map[string]bool
}

func loadFTSRules(ctx context.Context, db *sql.DB) (ftsRules, error) {
	r := ftsRules{minLen: 3, maxLen: 84, stopwords: map[string]bool{}}
	if err := db.QueryRowContext(ctx, "SELECT @@innodb_ft_min_token_size, @@innodb_ft_max_token_size").Scan(&r.minLen, &r.maxLen); err != nil {
		return ftsRules{}, fmt.Errorf("read full-text settings: %w", mapErr(err))
	}
	rows, err := db.QueryContext(ctx, "SELECT value FROM INFORMATION_SCHEMA.INNODB_FT_DEFAULT_STOPWORD")
	if err != nil {
		// Without the list every term still works: a stopword would just find nothing
		// through the index. Not worth refusing to start over.
		return r, nil
	}
	defer rows.Close()
	for rows.Next() {
		var w string
		if err := rows.Scan(&w); err == nil {
			r.stopwords[strings.ToLower(w)] = true
		}
	}
	return r, nil
}

func (r ftsRules) indexed(term string) bool {
	n := utf8.RuneCountInString(term)
	return n >= r.minLen && n <= r.maxLen && !r.stopwords[term]
}

// matchCond builds the condition "column contains every term": a BOOLEAN MODE full-text
// match with each indexable term as a required prefix (+term*), and LIKE for the rest.
func (r ftsRules) matchCond(column string, terms []string) (string, []any) {
	var conds []string
	var args []any
	var ft []string
	for _, t := range terms {
		if r.indexed(t) {
			ft = append(ft, "+"+t+"*")
			continue
		}
		conds = append(conds, column+" LIKE ?")
		args = append(args, "%"+escapeLike(t)+"%")
	}
	if len(ft) > 0 {
		conds = append([]string{"MATCH(" + column + ") AGAINST (? IN BOOLEAN MODE)"}, conds...)
		args = append([]any{strings.Join(ft, " ")}, args...)
	}
	return strings.Join(conds, " AND "), args
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// Search tuning. A search first reads the newest chats after the cursor and matches
// them here; when the terms are frequent that fills the page at once. When they are
// rare (the first window matched too little to fill the page within scanBudget chats)
// the full-text indexes find the rest. A search whose every term is too short for the
// index reads at most scanBudget chats per page and says where to go on.
const (
	probeWindow = 25
	scanWindow  = 100
	scanBudget  = 400
)

// ListChats implements app.Store: newest activity first, after the cursor, and when
// terms are given only chats whose title or one of whose messages contains them all
// (a term the full-text index holds as a word prefix, a shorter one anywhere).
func (s *Store) ListChats(ctx context.Context, userID string, q app.ChatQuery) ([]app.Chat, *app.ChatCursor, error) {
	if len(q.Terms) == 0 {
		chats, err := s.pageChats(ctx, userID, q.After, q.Limit)
		return chats, nil, err
	}
	m := newMatcher(s.fts, q.Terms)
	var out []app.Chat
	after := q.After
	scanned, window := 0, probeWindow
	for {
		batch, err := s.pageChats(ctx, userID, after, window)
		if err != nil {
			return nil, nil, err
		}
		hits, err := s.matchChats(ctx, batch, m)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, hits...)
		scanned += len(batch)
		if len(out) >= q.Limit {
			return out[:q.Limit], nil, nil
		}
		if len(batch) < window {
			return out, nil, nil // the whole history was read
		}
		last := batch[len(batch)-1]
		after = &app.ChatCursor{UpdatedAt: last.UpdatedAt, ID: last.ID}
		left := scanBudget - scanned
		if left <= 0 {
			break
		}
		if m.indexed() {
			// Scan on only while the matches seen so far promise a full page in budget.
			need := q.Limit - len(out)
			if len(out) == 0 || need*scanned > len(out)*left {
				break
			}
		}
		window = min(scanWindow, left)
	}
	if !m.indexed() {
		return out, after, nil
	}
	rest, err := s.searchIndexed(ctx, userID, m, after, q.Limit-len(out))
	if err != nil {
		return nil, nil, err
	}
	return append(out, rest...), nil, nil
}

// pageChats reads up to limit chats after the cursor, newest activity first.
func (s *Store) pageChats(ctx context.Context, userID string, after *app.ChatCursor, limit int) ([]app.Chat, error) {
	// Without the hint MariaDB reads the user's whole index prefix backwards (ref
	// access) instead of seeking to the cursor (range access): 25 times slower on page
	// 100 of 10,000 chats.
	query := "SELECT " + chatCols + " FROM chats c FORCE INDEX (ix_chats_user_activity) WHERE c.user_id = ?"
	args := []any{userID}
	if after != nil {
		// The first condition is a range on ix_chats_user_activity; the second one
		// settles ties.
		query += " AND c.updated_at <= ? AND (c.updated_at < ? OR c.id < ?)"
		args = append(args, after.UpdatedAt, after.UpdatedAt, after.ID)
	}
	query += " ORDER BY c.updated_at DESC, c.id DESC LIMIT ?"
	return s.queryChats(ctx, query, append(args, limit)...)
}

// matchChats returns the chats of batch whose title or one of whose messages matches.
func (s *Store) matchChats(ctx context.Context, batch []app.Chat, m matcher) ([]app.Chat, error) {
	if len(batch) == 0 {
		return nil, nil
	}
	found := map[string]bool{}
	var ids []any
	for _, c := range batch {
		if m.match(c.Title) {
			found[c.ID] = true
			continue
		}
		ids = append(ids, c.ID)
	}
	if len(ids) > 0 {
		rows, err := s.db.QueryContext(ctx, "SELECT chat_id, content FROM messages WHERE chat_id IN ("+placeholders(len(ids))+")", ids...)
		if err != nil {
			return nil, fmt.Errorf("read messages to search: %w", mapErr(err))
		}
		defer rows.Close()
		var chatID string
		var content sql.RawBytes
		for rows.Next() {
			if err := rows.Scan(&chatID, &content); err != nil {
				return nil, fmt.Errorf("read message to search: %w", mapErr(err))
			}
			if !found[chatID] && m.match(string(content)) {
				found[chatID] = true
			}
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read messages to search: %w", mapErr(err))
		}
	}
	var out []app.Chat
	for _, c := range batch {
		if found[c.ID] {
			out = append(out, c)
		}
	}
	return out, nil
}

// searchIndexed finds chats after the cursor through the full-text indexes: the chats
// of matching messages and the chats with a matching title, joined to chats for the
// order. A rare term reads few index entries; a frequent one was served by the scan.
func (s *Store) searchIndexed(ctx context.Context, userID string, m matcher, after *app.ChatCursor, limit int) ([]app.Chat, error) {
	msgCond, msgArgs := s.fts.matchCond("m.content", m.terms)
	titleCond, titleArgs := s.fts.matchCond("t.title", m.terms)
	query := "SELECT " + prefixed("c.", chatCols) + " FROM (" +
		"SELECT m.chat_id AS id FROM messages m WHERE " + msgCond + " AND m.user_id = ?" +
		" UNION SELECT t.id FROM chats t WHERE " + titleCond + " AND t.user_id = ?" +
		") hit JOIN chats c ON c.id = hit.id WHERE c.user_id = ?"
	args := append(msgArgs, userID)
	args = append(args, titleArgs...)
	args = append(args, userID, userID)
	if after != nil {
		query += " AND c.updated_at <= ? AND (c.updated_at < ? OR c.id < ?)"
		args = append(args, after.UpdatedAt, after.UpdatedAt, after.ID)
	}
	query += " ORDER BY c.updated_at DESC, c.id DESC LIMIT ?"
	return s.queryChats(ctx, query, append(args, limit)...)
}

func (s *Store) queryChats(ctx context.Context, query string, args ...any) ([]app.Chat, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query chats: %w", mapErr(err))
	}
	defer rows.Close()
	var out []app.Chat
	for rows.Next() {
		c, err := scanChat(rows)
		if err != nil {
			return nil, fmt.Errorf("read chat: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read chats: %w", mapErr(err))
	}
	return out, nil
}

// prefixed qualifies every column of a column list.
func prefixed(p, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = p + parts[i]
	}
	return strings.Join(parts, ", ")
}

// matcher matches text as the SQL conditions of searchIndexed do: a term the
// full-text index holds must start a word (words are runs of letters, digits and _),
// any other term may be anywhere; case does not matter.
type matcher struct {
	terms         []string
	words, substr []string
}

func newMatcher(r ftsRules, terms []string) matcher {
	m := matcher{terms: terms}
	for _, t := range terms {
		if r.indexed(t) {
			m.words = append(m.words, t)
		} else {
			m.substr = append(m.substr, t)
		}
	}
	return m
}

// indexed reports whether the full-text index can answer the search.
func (m matcher) indexed() bool { return len(m.words) > 0 }

func (m matcher) match(text string) bool {
	lower := strings.ToLower(text)
	for _, t := range m.terms {
		if !strings.Contains(lower, t) {
			return false
		}
	}
	for _, t := range m.words {
		if !startsWord(lower, t) {
			return false
		}
	}
	return true
}

// startsWord reports whether t occurs in s at the start of a word.
func startsWord(s, t string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], t)
		if j < 0 {
			return false
		}
		at := i + j
		if at == 0 {
			return true
		}
		if r, _ := utf8.DecodeLastRuneInString(s[:at]); !unicode.IsLetter(r) && !unicode.IsNumber(r) && r != '_' {
			return true
		}
		i = at + 1
	}
}
