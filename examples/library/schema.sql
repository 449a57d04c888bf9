-- The library example: a second source no shop code knows, onboarded only through `tidewater source init`
-- and the table registry (README: Use your own database). A TOASTed column (books.summary) and a
-- composite key (loans).
CREATE SCHEMA library;

CREATE TABLE library.members (
    member_id bigint PRIMARY KEY,
    full_name text NOT NULL,
    email varchar(120),
    joined_on date NOT NULL,
    fee_paid numeric(10, 2)
);

CREATE TABLE library.books (
    book_id integer PRIMARY KEY,
    title text NOT NULL,
    summary text,  -- long: stored out of line (TOAST), so an update that leaves it is sent without it
    pages integer
);

CREATE TABLE library.loans (
    member_id bigint NOT NULL REFERENCES library.members,
    book_id integer NOT NULL REFERENCES library.books,
    lent_at timestamptz NOT NULL,
    returned_at timestamptz,
    PRIMARY KEY (member_id, book_id)
);
