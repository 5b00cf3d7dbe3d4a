-- Sample data for the compose deployment's source (run once, when its volume is created):
-- replace the source service with your own server to migrate a real database.
CREATE TABLE public.customers (
  id bigint PRIMARY KEY,
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE public.orders (
  id bigserial PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES public.customers (id),
  amount numeric(12, 2) NOT NULL,
  placed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO public.customers (id, name)
SELECT i, 'customer ' || i FROM generate_series(1, 1000) AS i;
INSERT INTO public.orders (customer_id, amount)
SELECT 1 + i % 1000, (i % 997) * 1.25 FROM generate_series(1, 100000) AS i;
