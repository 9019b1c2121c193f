// AVA deno example: TypeScript, default export.
type Input = { name?: string };

export default async function handler(
  { input, env }: { input: Input; env: Record<string, string> },
): Promise<{ message: string; job?: string }> {
  const greeting = env.GREETING ?? "Hello";
  console.log(`greeting ${JSON.stringify(input.name)}`); // a log line, never the result
  return { message: `${greeting}, ${input.name ?? "world"}!`, job: env.AVA_JOB_ID };
}
