// AVA nodejs example (CommonJS; `export default async function handler` works too).
module.exports = async function handler({ input, env }) {
  const greeting = env.GREETING ?? "Hello";
  console.log(`greeting ${JSON.stringify(input.name)}`); // a log line, never the result
  return { message: `${greeting}, ${input.name ?? "world"}!`, job: env.AVA_JOB_ID };
};
