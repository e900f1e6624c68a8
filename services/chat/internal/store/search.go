package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
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

// ListChats implements app.Store: newest activity first, after the cursor, and when
// terms are given only chats whose title or one of whose messages contains them all.
func (s *Store) ListChats(ctx context.Context, userID string, q app.ChatQuery) ([]app.Chat, error) {
	query := "SELECT " + chatCols + " FROM chats c WHERE c.user_id = ?"
	args := []any{userID}
	if q.After != nil {
		query += " AND (c.updated_at < ? OR (c.updated_at = ? AND c.id < ?))"
		args = append(args, q.After.UpdatedAt, q.After.UpdatedAt, q.After.ID)
	}
	if len(q.Terms) > 0 {
		titleCond, titleArgs := s.fts.matchCond("c.title", q.Terms)
		msgCond, msgArgs := s.fts.matchCond("m.content", q.Terms)
		query += " AND ((" + titleCond + ") OR c.id IN (SELECT m.chat_id FROM messages m WHERE m.user_id = ? AND " + msgCond + "))"
		args = append(args, titleArgs...)
		args = append(args, userID)
		args = append(args, msgArgs...)
	}
	query += " ORDER BY c.updated_at DESC, c.id DESC LIMIT ?"
	args = append(args, q.Limit)
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
